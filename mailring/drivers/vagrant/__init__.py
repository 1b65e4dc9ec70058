"""The vagrant driver: FreeBSD VMs from the top-level Vagrantfile, via python-vagrant and SSH."""

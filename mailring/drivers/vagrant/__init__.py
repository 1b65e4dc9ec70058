"""The vagrant driver: FreeBSD VMs from the top-level Vagrantfile, driven over python-vagrant and SSH."""

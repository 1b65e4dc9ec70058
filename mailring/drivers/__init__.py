"""Cluster drivers: lab (Linux namespaces on this host) and vagrant (FreeBSD VMs)."""

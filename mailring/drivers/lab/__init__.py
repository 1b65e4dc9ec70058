"""The lab driver: the whole cluster as Linux namespaces on this host, with real daemons."""

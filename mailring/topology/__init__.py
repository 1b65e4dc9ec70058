"""The topology: the one file that says what the cluster is, and its model."""

from mailring.topology.load import DEFAULT_TOPOLOGY, load, validate
from mailring.topology.model import Node, Service, Topology, User, Vip

__all__ = ["DEFAULT_TOPOLOGY", "Node", "Service", "Topology", "User", "Vip", "load", "validate"]

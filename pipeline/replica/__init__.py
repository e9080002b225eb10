"""Offline replica world: local HTTP servers that replicate a small web of rally reports."""

from pipeline.replica.world import ReplicaWorld

__all__ = ["ReplicaWorld"]

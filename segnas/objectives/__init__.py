"""Objectives beyond accuracy: latency lookup tables and architecture regularizers (FLOPs and parameters
live in segnas.profile)."""

from .latency import LatencyMiss, LatencyTable, OpKey, interleaved_fastest, latency_environment
from .regularizers import entropy, gate_entropy, indegree, indegree_penalty

__all__ = ["LatencyMiss", "LatencyTable", "OpKey", "interleaved_fastest", "latency_environment", "entropy",
           "gate_entropy", "indegree", "indegree_penalty"]

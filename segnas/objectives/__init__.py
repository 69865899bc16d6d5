"""Objectives beyond accuracy: latency lookup tables (FLOPs and parameters live in segnas.profile)."""

from .latency import LatencyMiss, LatencyTable, OpKey, interleaved_fastest, latency_environment

__all__ = ["LatencyMiss", "LatencyTable", "OpKey", "interleaved_fastest", "latency_environment"]

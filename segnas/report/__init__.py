"""Plots: architecture drawings (more reports join here)."""

from .draw import draw_genotype

__all__ = ["draw_genotype"]

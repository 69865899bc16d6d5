"""Plots: architecture drawings (more reports join here). Each method's record names its drawing."""

from .draw import draw_autodeeplab, draw_dcnas, draw_dots, draw_fasterseg, draw_nekrasov

__all__ = ["draw_autodeeplab", "draw_dcnas", "draw_dots", "draw_fasterseg", "draw_nekrasov"]

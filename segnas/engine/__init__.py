"""Training, evaluation, checkpoints and run folders."""

from .checkpoint import atomic_save, load_checkpoint
from .evaluate import evaluate, per_class_table
from .trainer import model_from_checkpoint, retrain

__all__ = ["atomic_save", "evaluate", "load_checkpoint", "model_from_checkpoint", "per_class_table", "retrain"]

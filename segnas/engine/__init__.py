"""Training, evaluation, checkpoints, run folders and the run session they share."""

from .checkpoint import atomic_save, load_checkpoint
from .evaluate import evaluate, per_class_table
from .retrain import retrain
from .session import RunSession
from .trainer import Trainer, model_from_checkpoint, train_network

__all__ = ["RunSession", "Trainer", "atomic_save", "evaluate", "load_checkpoint", "model_from_checkpoint",
           "per_class_table", "retrain", "train_network"]

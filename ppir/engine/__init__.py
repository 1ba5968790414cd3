"""Training and evaluation engine.

Importing this package registers the `train:` / `val:` config sections (`options`) and the optimizers and
learning-rate schedules (`optim`); the trainer, checkpoints and evaluator are imported on use:

    from ppir.engine.trainer import Trainer        # Trainer(cfg, resume=...).train()
    from ppir.engine.evaluator import evaluate     # evaluate(model, dataset, metrics, ...)
"""
from . import optim, options  # noqa: F401  (registration)
from .options import TrainOptions, ValOptions

__all__ = ["TrainOptions", "ValOptions", "optim", "options"]

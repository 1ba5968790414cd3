"""Training and evaluation engine.

Importing this package registers the optimizers and learning-rate schedules (`optim`); the `train:` / `val:`
sections are dataclasses in `ppir.sections`; the trainer, checkpoints and evaluator are imported on use:

    from ppir.engine.trainer import Trainer        # Trainer(cfg, resume=...).train()
    from ppir.engine.evaluator import evaluate     # evaluate(model, dataset, metrics, ...)
"""
from . import optim  # noqa: F401  (registration)
from ..sections import TrainOptions, ValOptions

__all__ = ["TrainOptions", "ValOptions", "optim"]

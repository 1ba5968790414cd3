"""Old home of the `train:` / `val:` section dataclasses, which now live in `ppir.sections` (config validates
every section from there); kept so that scripts importing this path keep working."""
from ..sections import TrainOptions, ValOptions, options_from  # noqa: F401

__all__ = ["TrainOptions", "ValOptions", "options_from"]

"""The errors ppir raises for bad user input. CLIs turn them into one-line messages."""


class PPIRError(Exception):
    """Base class: a problem with the user's input that deserves a one-line message, not a traceback."""

    exit_code = 2


class ConfigError(PPIRError):
    """A config file, a `-o` override or a constructor argument is wrong."""


class CheckpointError(PPIRError):
    """A weights file cannot be read, is refused as unsafe, or does not fit the model."""


class ImageError(PPIRError):
    """An image file is missing, unreadable or of a kind ppir cannot use."""


class DatasetError(PPIRError):
    """A dataset path is missing or empty, or its layout is not the one expected."""

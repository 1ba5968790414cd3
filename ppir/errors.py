"""The errors ppir raises for bad user input. CLIs turn them into one-line messages."""
import reprlib

# Values quoted in messages are cut: a config value can be a huge (or, through YAML aliases, exponentially large)
# structure, and reprlib stops walking it at these limits, so quoting costs little whatever the value.
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxtuple, _QUOTE.maxdict, _QUOTE.maxset = 3, 6, 6, 6, 6
_QUOTE.maxstring, _QUOTE.maxother, _QUOTE.maxlong = 80, 80, 40


def quote(value, limit: int = 120) -> str:
    """repr(value) for a one-line message: bounded in work and cut to about `limit` characters."""
    text = " ".join(_QUOTE.repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


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

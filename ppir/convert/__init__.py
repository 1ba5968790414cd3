"""Reading weights files safely and mapping them onto ppir's networks by name."""
from .formats import WeightsFile, read_weights_file
from .keymap import MatchReport, match_state_dict

__all__ = ["WeightsFile", "read_weights_file", "MatchReport", "match_state_dict"]

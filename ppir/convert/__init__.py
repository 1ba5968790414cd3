"""Reading weights files safely and mapping them onto ppir's networks by name.

One module per job: sniff.py tells the format from the bytes; safe_pickle.py is the restricted unpickler all
readers share; torch_pickle.py the tensor records both torch.save formats share; torch_zip.py and
torch_legacy.py the two torch.save layouts; paddle_pickle.py paddle.save files; formats.py picks the reader
and unwraps official checkpoints; keymap.py matches tensors to a network by name.
"""
from .formats import WeightsFile, read_torch_checkpoint, read_weights_file
from .keymap import MatchReport, match_state_dict
from .paddle_pickle import read_paddle_pdparams, read_paddle_pickle

__all__ = ["WeightsFile", "read_weights_file", "read_torch_checkpoint", "read_paddle_pdparams",
           "read_paddle_pickle", "MatchReport", "match_state_dict"]

"""Inference: pre/post-processing shared by every runner, and the runners' backends."""

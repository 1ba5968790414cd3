"""Data: image I/O now; datasets, degradations and augmentation join with training."""

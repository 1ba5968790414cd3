"""Data: image I/O, the dataset contract, paired datasets in the official layouts, the SIDD validation
.mat files, synthetic degradations and the augmentations (crop, dihedral transforms, MixUp).

The dataset classes register in `ppir.registry.DATASETS` when `ppir.data.datasets` is imported (the table does
that on its first look-up); `build_dataset` builds the one a config's `datasets:` entry names. The names below
load on first use (PEP 562): the runners import `ppir.data.image_io` and `image_header` without Paddle.
"""
import importlib as _importlib

# public name -> the module of this package that defines it
_LAZY = {
    "RestorationDataset": "base", "build_dataset": "build", "PairedFolderDataset": "paired",
    "SIDDDataset": "paired", "GoProDataset": "paired", "Rain13kDataset": "paired", "REDSDataset": "paired",
    "SIDDValDataset": "sidd_val", "SyntheticDataset": "synthetic", "export_pairs": "synthetic",
    "mixup": "transforms", "dihedral": "transforms", "dihedral_inverse": "transforms",
}

__all__ = ["RestorationDataset", "build_dataset", "PairedFolderDataset", "SIDDDataset", "GoProDataset",
           "Rain13kDataset", "REDSDataset", "SIDDValDataset", "SyntheticDataset", "export_pairs", "mixup", "dihedral",
           "dihedral_inverse"]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

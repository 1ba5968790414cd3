"""Data: image I/O, the dataset contract, paired datasets in the official layouts, the SIDD validation
.mat files, synthetic degradations and the augmentations (crop, dihedral transforms, MixUp).

Importing this package registers every dataset class in `ppir.registry.DATASETS`; `build_dataset` builds the
one a config's `datasets:` entry names.
"""
from . import image_io  # noqa: F401
from .base import RestorationDataset
from .build import build_dataset
from .paired import GoProDataset, PairedFolderDataset, Rain13kDataset, REDSDataset, SIDDDataset
from .sidd_val import SIDDValDataset
from .synthetic import SyntheticDataset, export_pairs
from .transforms import dihedral, dihedral_inverse, mixup

__all__ = ["RestorationDataset", "build_dataset", "PairedFolderDataset", "SIDDDataset", "GoProDataset",
           "Rain13kDataset", "REDSDataset", "SIDDValDataset", "SyntheticDataset", "export_pairs", "mixup", "dihedral",
           "dihedral_inverse"]

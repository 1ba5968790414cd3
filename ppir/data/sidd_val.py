"""The SIDD sRGB validation set as the benchmark ships it: two MATLAB files of 40 x 32 blocks.

`ValidationNoisyBlocksSrgb.mat` and `ValidationGtBlocksSrgb.mat` each hold one array under the key named
like the file, shape (40, 32, 256, 256, 3) uint8 RGB: 40 images x 32 blocks = 1280 samples, named
`ValidationBlocksSrgb_<i>` with i = image * 32 + block (HINet's PNG dump uses the same names and order).
Read with scipy.io.loadmat (MATLAB v5/v7 files); both arrays stay in memory (about 250 MB each).
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import DatasetError
from ..registry import DATASETS
from .base import RestorationDataset
from .paired import SIDD_URL

NOISY_KEY = "ValidationNoisyBlocksSrgb"
GT_KEY = "ValidationGtBlocksSrgb"


def load_blocks(path: str, default_key: str) -> np.ndarray:
    """The block array of one SIDD validation .mat file, as (images, blocks, H, W, 3) uint8."""
    expected = f"a MATLAB .mat file holding '{default_key}' of shape (40, 32, 256, 256, 3) uint8"
    if not path:
        raise DatasetError(f"SIDDValDataset: the path of {default_key}.mat is not set; expected {expected}; "
                           f"download: {SIDD_URL}")
    if not os.path.isfile(path):
        raise DatasetError(f"SIDDValDataset: {path}: no such file; expected {expected}; download: {SIDD_URL}")
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError:
        raise DatasetError(f"SIDDValDataset: {path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read and "
                           f"ppir does not read without h5py; re-save it in MATLAB with save(..., '-v7') or "
                           f"use the original v5 file from {SIDD_URL}") from None
    except Exception as e:  # scipy raises ValueError/MatReadError/TypeError for files that are not .mat
        raise DatasetError(f"SIDDValDataset: {path}: not a readable MATLAB .mat file "
                           f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    keys = [k for k in data if not k.startswith("__")]
    stem = os.path.splitext(os.path.basename(path))[0]
    for key in (stem, default_key):
        if key in data:
            break
    else:
        if len(keys) != 1:
            raise DatasetError(f"SIDDValDataset: {path}: no array named {stem!r} or {default_key!r} "
                               f"(keys: {', '.join(keys) or 'none'})")
        key = keys[0]
    arr = np.asarray(data[key])
    if arr.ndim == 4 and arr.shape[-1] == 3:  # (blocks, H, W, 3): one image's worth, or already flattened
        arr = arr[None]
    if arr.ndim != 5 or arr.shape[-1] != 3:
        raise DatasetError(f"SIDDValDataset: {path}: array {key!r} has shape {arr.shape}; expected "
                           f"(images, blocks, H, W, 3) such as (40, 32, 256, 256, 3)")
    return arr


@DATASETS.register
class SIDDValDataset(RestorationDataset):
    """SIDD validation blocks from `ValidationNoisyBlocksSrgb.mat` (noisy_mat) and
    `ValidationGtBlocksSrgb.mat` (gt_mat): 1280 samples 'ValidationBlocksSrgb_<image*32+block>'."""

    def __init__(self, noisy_mat: str = "", gt_mat: str = "", patch_size: int = 0, use_flip: bool = False,
                 use_rot: bool = False, skip_bad: bool = False):
        super().__init__(patch_size=patch_size, use_flip=use_flip, use_rot=use_rot, skip_bad=skip_bad)
        self.noisy_mat, self.gt_mat = noisy_mat, gt_mat
        noisy = load_blocks(noisy_mat, NOISY_KEY)
        gt = load_blocks(gt_mat, GT_KEY)
        if noisy.shape != gt.shape:
            raise DatasetError(f"SIDDValDataset: {noisy_mat} holds blocks of shape {noisy.shape} but {gt_mat} "
                               f"holds {gt.shape}")
        self.num_images, self.num_blocks = noisy.shape[:2]
        self._noisy = noisy.reshape((-1,) + noisy.shape[2:])
        self._gt = gt.reshape((-1,) + gt.shape[2:])

    def __len__(self) -> int:
        return self._noisy.shape[0]

    @staticmethod
    def _to_float(block: np.ndarray) -> np.ndarray:
        if block.dtype == np.uint8:
            return block.astype(np.float32) / 255.0
        if block.dtype == np.uint16:
            return block.astype(np.float32) / 65535.0
        return np.clip(block.astype(np.float32), 0.0, 1.0)

    def describe(self, index: int) -> str:
        return f"{self.noisy_mat} block {index} (image {index // self.num_blocks}, block {index % self.num_blocks})"

    def load_pair(self, index: int):
        return self._to_float(self._noisy[index]), self._to_float(self._gt[index]), f"ValidationBlocksSrgb_{index}"

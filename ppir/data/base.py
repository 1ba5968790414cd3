"""The contract every ppir dataset follows; the training engine relies on it exactly.

    len(ds)                      number of samples
    ds.sample(index, rng)        {'lq': float32 CxHxW RGB in [0, 1], 'gt': same shape, 'name': str}
    ds[index]                    ds.sample(index, ds.eval_rng(index)): deterministic (validation, evaluation)

Every random choice a sample needs (crop position, flip/rotation, synthetic degradation) is drawn from the
`rng` argument and from nothing else, so the engine makes a run exactly reproducible and resumable by
passing `np.random.default_rng([seed, sample_counter])`. `eval_rng(index)` is `np.random.default_rng(index)`
here; SyntheticDataset mixes its `seed` in.

Shared constructor options (every subclass lists them explicitly, so the config validator sees them):

    patch_size: int = 0     0 = the whole image; N > 0 = a random N x N window, the same for lq and gt
                            (ImageError naming the file when the image is smaller)
    use_flip: bool = False  random left-right mirror
    use_rot: bool = False   random quarter-turn rotation; with use_flip: the 8 dihedral transforms
    skip_bad: bool = False  an unreadable image raises ImageError naming the file; with skip_bad the
                            sample is taken from the next readable index instead (index+1, index+2, ...,
                            wrapping), the bad index is remembered and counted (`num_skipped`,
                            `skipped`), and a warning with the running count is issued (warnings.warn).
                            Counts are per process: DataLoader workers each keep their own. Every
                            check that can fail runs before anything is drawn from rng, so a sample is
                            the same whether or not the bad index was already known (resume-safe).

Subclasses implement `__len__` and `load_pair(index) -> (lq HxWx3, gt HxWx3, name)`, a deterministic read
raising ImageError for a bad image; SyntheticDataset overrides `make_sample` to degrade after cropping.
"""
from __future__ import annotations

import warnings

import numpy as np
from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
import paddle

from ..errors import ConfigError, DatasetError, ImageError
from .transforms import paired_random_augment, paired_random_crop, to_chw


class RestorationDataset(paddle.io.Dataset):
    """Base class of every ppir dataset; see the module docstring for the contract."""

    def __init__(self, patch_size: int = 0, use_flip: bool = False, use_rot: bool = False,
                 skip_bad: bool = False):
        super().__init__()
        if patch_size is None:
            patch_size = 0
        if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 0:
            raise ConfigError(f"{type(self).__name__}: patch_size must be an int >= 0 "
                              f"(0 = whole image), got {patch_size!r}")
        self.patch_size = int(patch_size)
        self.use_flip = bool(use_flip)
        self.use_rot = bool(use_rot)
        self.skip_bad = bool(skip_bad)
        self._bad: dict[int, str] = {}

    # ------------------------------------------------------------------ what subclasses provide
    def __len__(self) -> int:
        raise NotImplementedError

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """(lq, gt, name) for a valid index: HxWx3 RGB float32 in [0, 1]; ImageError for a bad image."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the contract
    def eval_rng(self, index: int) -> np.random.Generator:
        """The generator `__getitem__` uses: fixed per index, so evaluation is deterministic."""
        return np.random.default_rng(index)

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        return self.sample(index, self.eval_rng(index))

    def sample(self, index: int, rng: np.random.Generator) -> dict:
        """One sample, every random choice drawn from `rng`: {'lq', 'gt' (float32 CxHxW), 'name'}."""
        index = self._check_index(index)
        n = len(self)
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            try:
                lq, gt, name = self.make_sample(i, rng)
            except ImageError as e:
                if not self.skip_bad:
                    raise
                self._bad[i] = str(e)
                warnings.warn(f"{type(self).__name__}: skipped a bad image ({len(self._bad)} skipped "
                              f"so far): {e}", stacklevel=2)
                continue
            return {"lq": to_chw(lq), "gt": to_chw(gt), "name": name}
        raise DatasetError(f"{type(self).__name__}: every one of its {n} samples has a bad image "
                           f"(first: {next(iter(self._bad.values()), '?')})")

    def make_sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        """Read, crop and augment one pair (HxWx3 arrays); may raise ImageError."""
        lq, gt, name = self.load_pair(index)
        lq, gt = self.crop_and_augment(lq, gt, rng, self.describe(index))
        return lq, gt, name

    def describe(self, index: int) -> str:
        """Where sample `index` comes from (a file path for file datasets), for error messages."""
        return f"{type(self).__name__}[{index}]"

    def crop_and_augment(self, lq, gt, rng, name):
        """The shared options: random aligned crop (crop position drawn first), then the dihedral transform.
        `name` (a file path) is what errors mention."""
        if lq.shape != gt.shape:
            raise ImageError(f"{name}: input {lq.shape[1]}x{lq.shape[0]} and ground truth "
                             f"{gt.shape[1]}x{gt.shape[0]} (WxH) differ in size")
        if self.patch_size:
            lq, gt = paired_random_crop(lq, gt, self.patch_size, rng, name)
        lq, gt, _ = paired_random_augment(lq, gt, rng, self.use_flip, self.use_rot)
        return lq, gt

    # ------------------------------------------------------------------ bookkeeping
    @property
    def num_skipped(self) -> int:
        """How many unreadable images this process has skipped (skip_bad=True)."""
        return len(self._bad)

    @property
    def skipped(self) -> list[str]:
        """The error messages of the skipped images (each names its file)."""
        return list(self._bad.values())

    def _check_index(self, index) -> int:
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} index must be an int, got {type(index).__name__}")
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{type(self).__name__} index {index} out of range (len {n})")
        return index

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(len={len(self)}, patch_size={self.patch_size}, "
                f"use_flip={self.use_flip}, use_rot={self.use_rot})")

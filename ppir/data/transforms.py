"""Paired augmentations driven by an explicit `np.random.Generator` (never a global RNG).

Images are HxWxC numpy arrays unless an `axes` argument says otherwise. Every random choice takes the
generator as an argument, so the same generator state always gives the same result; that is what makes
training runs reproducible and resumable.

The dihedral group (8 transforms of a square) is numbered `mode = k + 4 * f`: rotate by k*90 degrees
counter-clockwise (np.rot90), then mirror left-right if f == 1. Mode 0 is the identity. `dihedral_inverse`
undoes a mode, which is what geometric self-ensemble needs.
"""
from __future__ import annotations

import numpy as np

from ..errors import ImageError

__all__ = ["paired_random_crop", "hflip", "vflip", "dihedral", "dihedral_inverse", "random_dihedral_mode",
           "paired_random_augment", "to_chw", "mixup"]


def paired_random_crop(lq: np.ndarray, gt: np.ndarray, patch_size: int, rng: np.random.Generator,
                       name: str = "<image>") -> tuple[np.ndarray, np.ndarray]:
    """The same random patch_size x patch_size window from lq and gt (HxWxC, same size).

    Raises ImageError naming `name` when the pair differs in size or is smaller than the patch.
    """
    if lq.shape[:2] != gt.shape[:2]:
        raise ImageError(f"{name}: input {lq.shape[1]}x{lq.shape[0]} and ground truth "
                         f"{gt.shape[1]}x{gt.shape[0]} (WxH) differ in size")
    h, w = gt.shape[:2]
    p = int(patch_size)
    if h < p or w < p:
        raise ImageError(f"{name}: the image is {w}x{h} (WxH), smaller than patch_size {p}")
    top = int(rng.integers(0, h - p + 1))
    left = int(rng.integers(0, w - p + 1))
    return lq[top:top + p, left:left + p], gt[top:top + p, left:left + p]


def hflip(img: np.ndarray, axes=(0, 1)) -> np.ndarray:
    """Mirror left-right (the width axis is axes[1])."""
    return np.flip(img, axis=axes[1])


def vflip(img: np.ndarray, axes=(0, 1)) -> np.ndarray:
    """Mirror top-bottom (the height axis is axes[0])."""
    return np.flip(img, axis=axes[0])


def dihedral(img: np.ndarray, mode: int, axes=(0, 1)) -> np.ndarray:
    """One of the 8 dihedral transforms: rot90 by (mode % 4) quarter turns, then a left-right mirror if
    mode >= 4. `axes` are the (height, width) axes: (0, 1) for HWC, (-2, -1) for CHW or NCHW."""
    mode = int(mode)
    if not 0 <= mode < 8:
        raise ValueError(f"dihedral mode must be in 0..7, got {mode}")
    out = np.rot90(img, k=mode % 4, axes=axes)
    if mode >= 4:
        out = np.flip(out, axis=axes[1])
    return out


def dihedral_inverse(img: np.ndarray, mode: int, axes=(0, 1)) -> np.ndarray:
    """Undo `dihedral(img, mode, axes)`."""
    mode = int(mode)
    if not 0 <= mode < 8:
        raise ValueError(f"dihedral mode must be in 0..7, got {mode}")
    out = np.flip(img, axis=axes[1]) if mode >= 4 else img
    return np.rot90(out, k=-(mode % 4), axes=axes)


def random_dihedral_mode(rng: np.random.Generator, use_flip: bool, use_rot: bool) -> int:
    """The dihedral mode the shared dataset options allow, drawn from rng.

    * use_flip only: identity or left-right mirror, 1/2 each (MIMO-UNet's augmentation);
    * use_rot only: the 4 rotations, 1/4 each;
    * both: the 8 dihedral transforms, 1/8 each (MIRNet's augmentation);
    * neither: identity, and nothing is drawn from rng.
    """
    if use_flip and use_rot:
        return int(rng.integers(0, 8))
    if use_rot:
        return int(rng.integers(0, 4))
    if use_flip:
        return 4 if rng.random() < 0.5 else 0
    return 0


def paired_random_augment(lq: np.ndarray, gt: np.ndarray, rng: np.random.Generator, use_flip: bool = False,
                          use_rot: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """Apply the same random dihedral transform to lq and gt (HxWxC); returns (lq, gt, mode)."""
    mode = random_dihedral_mode(rng, use_flip, use_rot)
    if mode == 0:
        return lq, gt, 0
    return dihedral(lq, mode), dihedral(gt, mode), mode


def to_chw(img: np.ndarray) -> np.ndarray:
    """HxWxC -> contiguous float32 CxHxW."""
    return np.ascontiguousarray(np.transpose(img, (2, 0, 1)), dtype=np.float32)


def mixup(lq_batch, gt_batch, rng: np.random.Generator, alpha: float = 1.2, shared_lambda: bool = False):
    """MIRNet's MixUp for restoration batches (NCHW numpy arrays or paddle Tensors).

    As in the official `MixUp_AUG.aug` (swz30/MIRNet utils/dataset_utils.py): one random permutation of
    the batch picks each sample's partner, and each sample gets its own weight lam_i ~ Beta(alpha, alpha)
    (`rsample((bs, 1))`), used for both its input and its ground truth:

        lq_i <- lam_i * lq_i + (1 - lam_i) * lq_perm(i);  gt_i <- lam_i * gt_i + (1 - lam_i) * gt_perm(i)

    `shared_lambda=True` draws one lam for the whole batch instead (not what MIRNet does). The permutation
    is drawn first, then the weights, both from `rng`. MIRNet applies it from epoch 6 on (`epoch > 5`).
    Returns (lq_mixed, gt_mixed) of the same type, shape and dtype as the inputs.
    """
    n = int(lq_batch.shape[0])
    if tuple(lq_batch.shape) != tuple(gt_batch.shape):
        raise ValueError(f"mixup: lq batch {tuple(lq_batch.shape)} and gt batch {tuple(gt_batch.shape)} differ")
    perm = rng.permutation(n)
    lam = np.full(n, rng.beta(alpha, alpha)) if shared_lambda else rng.beta(alpha, alpha, size=n)
    shape = (n,) + (1,) * (len(lq_batch.shape) - 1)
    if isinstance(lq_batch, np.ndarray):
        lam_b = lam.reshape(shape).astype(lq_batch.dtype)
        return (lam_b * lq_batch + (1 - lam_b) * lq_batch[perm],
                lam_b * gt_batch + (1 - lam_b) * gt_batch[perm])
    from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
    import paddle

    idx = paddle.to_tensor(perm.astype(np.int64))
    lam_t = paddle.to_tensor(lam.reshape(shape).astype(np.float32)).astype(lq_batch.dtype)
    lq_p = paddle.gather(lq_batch, idx, axis=0)
    gt_p = paddle.gather(gt_batch, idx, axis=0)
    return lam_t * lq_batch + (1 - lam_t) * lq_p, lam_t * gt_batch + (1 - lam_t) * gt_p

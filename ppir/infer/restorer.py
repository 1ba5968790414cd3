"""`ImageRestorer`: one image in, its restored image out, on any backend (dygraph, Paddle Inference, ONNX Runtime,
VACC). Every tool restores through it: the deploy runners, the server, the quantization report, tools/predict.py
and the evaluator (these two on a network compiled in-process by default, see `for_model`).

The steps, all driven by a `DeployInfo` (an export's inference.yml, or `ppir.infer.dygraph.model_info(model)`):

* HxWx3 RGB float in [0, 1] -> the network's channels -> 1 x C x H x W (`ppir.infer.pipeline`);
* the whole image reflect-padded to the network's multiple and minimum size, or overlapping tiles (`--tile`, a
  fixed-shape program's own H x W, or memory-budget auto-tiling: `ppir.infer.memory`), `ppir.infer.tiling`;
* optionally the 8-transform self-ensemble (the mean of the unclipped outputs);
* crop back, clip to [0, 1] (`restore`), and for 8-bit results the export's rounding (`__call__`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..data.transforms import dihedral, dihedral_inverse
from ..errors import ConfigError, ImageError
from .backends import MODEL_KINDS, make_backend
from .memory import MemoryPlanner
from .pipeline import pad_to_multiple, postprocess, to_network_channels, to_nchw, to_uint8
from .tiling import check_tile, run_tiled


class ImageRestorer:
    """Restores images with `backend` under the size rules, tiling defaults and rounding of `info`.

    `tile` None takes inference.yml's default, 0 restores whole images; a fixed-shape program always gets tiles of
    its own size. Without a tile, an image that would need more than `max_memory` bytes whole is tiled too, and
    `notes` (e.g. print to stderr) is told why. `blend` "mean" is HINet's official grid placement. `tile_option`
    names the setting in error messages (--tile, val.tile). `output` is what `finish` returns: "uint8" (the
    export's rounding; what runners save and score) or "float" (clipped to [0, 1]; predict, evaluation).
    """

    def __init__(self, backend, info, tile: int | None = None, tile_overlap: int | None = None,
                 blend: str = "smooth", batch_size: int = 1, max_memory: int = 0, self_ensemble: bool = False,
                 notes: Callable[[str], object] | None = None, tile_option: str = "--tile", output: str = "uint8"):
        self.backend, self.info = backend, info
        self.multiple, self.min_size = info.size_multiple, info.min_size
        self.blend = blend
        self.batch_size = max(1, int(batch_size))
        self.max_memory = int(max_memory or 0)  # also what the loop judges image headers against
        self.self_ensemble = bool(self_ensemble)
        self.notes = notes
        if output not in ("uint8", "float"):
            raise ValueError(f"output must be uint8 or float, got {output!r}")
        self.output = output
        self.tile_overlap = info.tile_overlap if tile_overlap is None else int(tile_overlap)
        fixed = info.fixed_shape
        self.fixed_batch = fixed[0] if fixed else None
        if fixed:
            self.tile = (fixed[2], fixed[3])  # a fixed-shape program only takes tiles of its own size
            if self.tile_overlap >= min(self.tile):  # e.g. the default 32 on a 32x32 program
                self.tile_overlap = min(self.tile) // 4
        else:
            self.tile = info.tile if tile is None else int(tile or 0)
        if self.tile:
            try:
                check_tile(self.tile, self.tile_overlap if blend == "smooth" else 0, self.multiple,
                           self.min_size, blend)
            except ValueError as e:
                raise ConfigError(f"{tile_option}: {e}") from None
        self.planner = MemoryPlanner(backend.run, 0 if self.tile else max_memory, info.in_channels, self.multiple,
                                     self.min_size, self.tile_overlap if blend == "smooth" else 0,
                                     self.batch_size, info.model_name, info.image_wide)
        self.auto_tiles: set = set()  # tile sizes auto-tiling chose (for the benchmark report)

    @classmethod
    def for_model(cls, model, threads: int | None = None, backend: str = "auto",
                  backend_notes: Callable[[str], object] | None = None, **options) -> "ImageRestorer":
        """On a dygraph network, no export needed: `backend` "auto" (default: on CPU the network compiled in-process
        for Paddle Inference + oneDNN, dygraph where that fails or on a GPU), "dygraph", "paddle" or "onnxruntime"
        (`backends.make_backend`; the model ends in eval mode), with the DeployInfo its export would write
        (`ppir.infer.dygraph.model_info`: size rules, channels). The backend's one build line (compile time, or why
        it fell back to dygraph) goes to `backend_notes`, by default stderr (`notes` stays for the tiling notes)."""
        from .dygraph import model_info  # imports paddle: only where a dygraph model is restored

        if backend not in MODEL_KINDS:
            raise ConfigError(f"backend must be one of {', '.join(MODEL_KINDS)} for a network, got {backend!r}")
        info = model_info(model)
        return cls(make_backend(backend, model, info, {"threads": threads}, notes=backend_notes), info, **options)

    @property
    def tiled(self) -> bool:
        """True when every image is tiled (--tile or a fixed-shape program)."""
        return bool(self.tile)

    def tile_for(self, img_rgb: np.ndarray, name: str | None = None):
        """The tile for this image: --tile / the fixed shape, an auto tile over the memory budget, or 0 (whole).
        With a `name`, `notes` hears why it auto-tiles; ImageError when not even small tiles fit the budget."""
        if self.tile:
            return self.tile
        tile, note = self.planner.tile_for(*img_rgb.shape[:2], name or "image")
        if note and name:
            self.auto_tiles.add(tile)
            if self.notes:
                self.notes(note)
        return tile

    def network_input(self, img_rgb: np.ndarray, tile=None) -> np.ndarray:
        """HxWx3 image -> 1xCxHxW (tiled) or 1xCxH'xW' padded to the network's multiple (whole image)."""
        x = to_nchw(to_network_channels(img_rgb, self.info.in_channels))
        tile = self.tile if tile is None else tile
        return x if tile else pad_to_multiple(x, self.multiple, self.min_size)

    def infer(self, x: np.ndarray, tile=None) -> np.ndarray:
        """Network on a batch of prepared inputs (tiled: one image at a time)."""
        tile = self.tile if tile is None else tile
        if tile:
            return np.concatenate([run_tiled(self.backend.run, x[i:i + 1], tile, self.tile_overlap, self.blend,
                                             self.batch_size, self.multiple, self.min_size,
                                             fixed_batch=self.fixed_batch, fixed_tile=self.fixed_batch is not None)
                                   for i in range(x.shape[0])])
        return self.backend.run(x)

    def to_image(self, y: np.ndarray, height: int, width: int) -> np.ndarray:
        """Network output -> HxWx3 uint8 with the export's rounding."""
        return to_uint8(postprocess(y, height, width), self.info.rounding)

    def network_output(self, img_rgb: np.ndarray, tile=None) -> np.ndarray:
        """1 x C' x H x W: the network's output for the image, unclipped and cropped back to its size; with
        self-ensemble the mean over the 8 flips/rotations of the image."""
        h, w = img_rgb.shape[:2]
        if not self.self_ensemble:
            return self.infer(self.network_input(img_rgb, tile), tile)[:, :, :h, :w]
        total = 0.0
        for mode in range(8):
            view = np.ascontiguousarray(dihedral(img_rgb, mode, axes=(0, 1)))
            y = self.infer(self.network_input(view, tile), tile)[:, :, :view.shape[0], :view.shape[1]]
            total = total + dihedral_inverse(y, mode, axes=(-2, -1)).astype(np.float64)
        return (total / 8).astype(np.float32)

    def restore(self, img_rgb: np.ndarray, name: str | None = None) -> np.ndarray:
        """HxWx3 RGB float in [0, 1] -> the restored HxWx3 float32 image, clipped to [0, 1] (`checked_image`
        says which other arrays are accepted)."""
        img_rgb = checked_image(img_rgb, name)
        h, w = img_rgb.shape[:2]
        return postprocess(self.network_output(img_rgb, self.tile_for(img_rgb, name)), h, w)

    def __call__(self, img_rgb: np.ndarray, name: str | None = None) -> np.ndarray:
        """HxWx3 RGB float in [0, 1] -> the restored HxWx3 uint8 image (inference.yml's rounding)."""
        img_rgb = checked_image(img_rgb, name)
        h, w = img_rgb.shape[:2]
        return self.to_image(self.network_output(img_rgb, self.tile_for(img_rgb, name)), h, w)

    in_child_process = False  # a predictor of the server's pool: this one runs in the server's own process

    def close(self) -> None:
        """Close the backend (a no-op unless it holds a device stream or a temporary file)."""
        self.backend.close()

    # -------------------------------------------------------------- the engine interface of ppir.infer.loop
    @property
    def images_per_call(self) -> int:
        """Images the loop may hand over at once (whole images of one padded size share a network call)."""
        return 1 if self.tiled or self.self_ensemble else self.batch_size

    def prepare(self, img_rgb: np.ndarray, name: str | None = None):
        """(prepared input, batch key): inputs with equal keys can be run together; None never shares."""
        tile = self.tile_for(img_rgb, name)
        if self.self_ensemble:
            return (img_rgb, tile), None
        x = self.network_input(img_rgb, tile)
        return (x, tile), (None if tile else x.shape[1:])

    def run(self, prepared: list, key) -> list:
        """Network outputs (1 x C' x H x W each) for prepared inputs of one batch key."""
        if key is None:
            return [self.network_output(x, tile) if self.self_ensemble else self.infer(x, tile)
                    for x, tile in prepared]
        y = self.infer(np.concatenate([x for x, _ in prepared]), 0)
        return [y[k:k + 1] for k in range(len(prepared))]

    def finish(self, y: np.ndarray, img) -> np.ndarray:
        """A network output -> the restored image at the size of `img` (uint8 or float, see `output`)."""
        h, w = img.shape[:2]
        return self.to_image(y, h, w) if self.output == "uint8" else postprocess(y, h, w)


def checked_image(img, name: str | None = None) -> np.ndarray:
    """An array given to the Python API as the HxWx3 float32 RGB image the pipeline takes; ImageError (one line)
    for what cannot be one. A 2-D (HxW) or HxWx1 array is a gray image, restored as RGB with equal channels
    (as gray files are read); HxWx4 is RGBA, its alpha dropped; uint8 / uint16 arrays are scaled to [0, 1].
    Empty arrays and arrays holding NaN or inf are refused: they would come out black, silently."""
    what = name or "the image"
    img = np.asarray(img)
    if img.dtype == bool or not (np.issubdtype(img.dtype, np.floating) or np.issubdtype(img.dtype, np.integer)):
        raise ImageError(f"{what}: an image array must hold numbers, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.ndim != 3 or img.shape[2] != 3:
        raise ImageError(f"{what}: expected an H x W x 3 RGB array (or H x W gray, H x W x 4 RGBA), got shape "
                         f"{tuple(img.shape)}")
    if img.size == 0:
        raise ImageError(f"{what}: the image is empty (shape {tuple(img.shape)})")
    if np.issubdtype(img.dtype, np.integer):
        if img.dtype not in (np.uint8, np.uint16):
            raise ImageError(f"{what}: integer images must be uint8 or uint16, got {img.dtype}")
        return img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 65535.0)
    bad = int(np.count_nonzero(~np.isfinite(img)))
    if bad:
        raise ImageError(f"{what}: {bad} of {img.size} values are NaN or infinite; an image holds finite values "
                         f"in [0, 1]")
    return img.astype(np.float32, copy=False)

"""`ppir.Restorer`: a network (config + weights) or an export as a callable on numpy images, for notebooks and
scripts::

    r = ppir.Restorer("configs/hinet_sidd_1x.yml", "HINet-SIDD-1x.pth")
    out = r(img)   # HxWx3 uint8 -> uint8; float in [0, 1] -> float32

The work is `ImageRestorer`'s (the one restorer every tool uses), built as `ppir predict` builds it
(`network_restorer`): backend "auto", whole images unless one needs more than the memory budget (then tiles).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .memory import default_budget
from .pipeline import to_uint8

Notes = Callable[[str], object]


def network_restorer(config, weights: str, overrides: Sequence[str] | None = None, backend: str = "auto",
                     tile: int = 0, tile_overlap: int = 32, max_memory: int | None = None,
                     notes: Notes | None = None):
    """The ImageRestorer of a config's network with `weights` (any format `ppir.load_weights` reads), returning
    float images; `max_memory` None is `memory.default_budget()` (1280M; half the machine's memory where that is
    less). `ppir predict` and `Restorer` both build here."""
    from ..models.build import build_model
    from ..weights import load_weights
    from .loop import print_note
    from .restorer import ImageRestorer

    model = build_model(config, overrides)
    load_weights(model, weights)
    return ImageRestorer.for_model(model, backend=backend, tile=tile, tile_overlap=tile_overlap,
                                   max_memory=default_budget() if max_memory is None else max_memory,
                                   output="float", notes=notes or print_note)


class Restorer:
    """Restores numpy images with a network: `Restorer(config, weights, overrides=None, **options)`.

    `config` is a YAML path or a dict (as `ppir.build_model` takes), `weights` a .pdparams, official .pth/.pkl or
    .npz file, `overrides` `-o`-style strings ("model.wf=16"). Options, as `ppir predict`'s flags: `backend`
    ("auto", "dygraph", "paddle", "onnxruntime"), `tile`, `tile_overlap`, `max_memory` (bytes; None: the default
    budget, 1280M), `notes` (hears tiling notes; default stderr). `Restorer.from_export(folder)` runs an export.

    Calling it on an HxWx3 RGB array returns the restored image of the same size: uint8 in -> uint8 out (rounded
    as `ppir predict` saves it; from an export, with its inference.yml's rounding, as `ppir infer` saves it),
    float in [0, 1] -> float32 in [0, 1]; HxW gray and HxWx4 RGBA arrays are taken as files are (uint16 ->
    float32). Arrays that are no image (wrong shape, empty, NaN or inf, non-numbers) raise ppir.ImageError with
    a one-line message.
    """

    def __init__(self, config, weights: str, overrides: Sequence[str] | None = None, *, backend: str = "auto",
                 tile: int = 0, tile_overlap: int = 32, max_memory: int | None = None, notes: Notes | None = None):
        self.engine = network_restorer(config, weights, overrides, backend, tile, tile_overlap, max_memory, notes)
        self.rounding = "nearest"  # 8-bit results as `ppir predict` saves them

    @classmethod
    def from_export(cls, model_dir: str, backend: str = "paddle", tile: int | None = None,
                    tile_overlap: int | None = None, max_memory: int | None = None,
                    notes: Notes | None = None, **backend_options) -> "Restorer":
        """A Restorer on an export folder (tools/export_model.py's program + inference.yml) with `backend`
        "paddle" or "onnxruntime"; tiles default to inference.yml's, as in `ppir infer`. `backend_options`
        (use_gpu=True, threads=4, ...) are that backend kind's options (`ppir.infer.backend_registry`)."""
        from .backends import make_backend
        from .deploy_info import read_deploy_info
        from .loop import print_note
        from .restorer import ImageRestorer

        info = read_deploy_info(model_dir)
        restorer = cls.__new__(cls)
        restorer.rounding = info.rounding  # 8-bit results as `ppir infer` saves them
        engine = make_backend(backend, model_dir, info, backend_options, notes=notes)
        restorer.engine = ImageRestorer(engine, info, tile, tile_overlap,
                                        max_memory=default_budget() if max_memory is None else max_memory,
                                        notes=notes or print_note, output="float")
        return restorer

    def __call__(self, img: np.ndarray) -> np.ndarray:
        arr = np.asarray(img)
        out = self.engine.restore(arr)  # checks the array (ppir.infer.restorer.checked_image)
        return to_uint8(out, self.rounding) if arr.dtype == np.uint8 else out

    def close(self) -> None:
        """Release the backend's resources (a no-op for most backends)."""
        close = getattr(self.engine.backend, "close", None)
        if close:
            close()

"""Where restored images go: one output name per input, and an output folder that never destroys an input.

Used by tools/predict.py and the deploy runners (`ppir.infer.runner`), so both follow the same rules:

* **Names.** An input ``<stem>.<ext>`` is saved as ``<stem>.png``. When several inputs of one run share a
  stem (``a.png``, ``a.jpg``, ``a.bmp``), the one named exactly ``<stem>.png`` keeps that name and the others
  get their full name plus ``.png`` (``a.jpg.png``, ``a.bmp.png``): every result is kept, the rule is
  deterministic, and the name still says which input it came from. Should that still collide (an input
  literally named ``a.jpg.png`` beside ``a.jpg`` and ``a.png``) the run is refused with the list.
* **No overwritten inputs.** An output folder equal to or inside an input folder (or the ground-truth folder),
  or an output file that would replace an input file, is refused unless ``--overwrite`` is given.
* **Writable.** The output folder (or its nearest existing parent) must be a writable folder; checked before
  any work, so a bad path is one line and exit 2, not a traceback after the first image.
"""
from __future__ import annotations

import os

from ..errors import ConfigError
from ..paths import nearest_existing, sweep_stale_temps

OUTPUT_EXT = ".png"
NAME_RULE = ("outputs are PNGs named <stem>.png; when inputs share a stem (a.png, a.jpg), the one named "
             "<stem>.png keeps it and the others are saved as <name>.png (a.jpg.png)")


def output_names(files: list[str]) -> dict[str, str]:
    """Input path -> output file name (no folder), unique within the run (rule in the module docstring)."""
    by_stem: dict[str, list[str]] = {}
    for path in files:
        by_stem.setdefault(os.path.splitext(os.path.basename(path))[0], []).append(path)
    names = {}
    for stem, group in by_stem.items():
        for path in group:
            base = os.path.basename(path)
            plain = len(group) == 1 or base == stem + OUTPUT_EXT
            names[path] = stem + OUTPUT_EXT if plain else base + OUTPUT_EXT
    seen: dict[str, list[str]] = {}
    for path, name in names.items():
        seen.setdefault(name, []).append(os.path.basename(path))
    clashes = {name: srcs for name, srcs in seen.items() if len(srcs) > 1}
    if clashes:
        listed = "; ".join(f"{name} <- {', '.join(srcs)}" for name, srcs in sorted(clashes.items()))
        raise ConfigError(f"inputs would be saved under the same name ({listed}); rename them")
    return names


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def check_output_folder(out_dir: str, option: str, inputs: list[str], input_folders: list[str],
                        names: dict[str, str], overwrite: bool = False) -> None:
    """ConfigError (one line, exit 2) when writing `names` into `out_dir` would replace an input or cannot
    work at all; nothing is created. `inputs` are the files read by the run (images, ground truths),
    `input_folders` the folders they were listed from. Then sweeps temporaries of killed earlier runs."""
    real_out = _real(out_dir)
    if not overwrite:
        for folder in input_folders:
            if _inside(real_out, _real(folder)):
                where = "is" if real_out == _real(folder) else "is inside"
                raise ConfigError(f"{option} {out_dir} {where} the input folder {folder}: results could replace "
                                  f"or mix with the inputs (choose another folder, or add --overwrite)")
        real_inputs = {_real(p): p for p in inputs}
        for path, name in names.items():
            hit = real_inputs.get(os.path.join(real_out, name))
            if hit:
                raise ConfigError(f"{option} {out_dir}: the result for {path} would replace the input {hit} "
                                  f"(choose another folder, or add --overwrite)")
    _check_writable(out_dir, option)
    sweep_stale_temps(out_dir)


def _check_writable(out_dir: str, option: str) -> None:
    probe = nearest_existing(os.path.abspath(out_dir))  # where the folder will be created
    if not os.path.isdir(probe):
        what = "is a file" if probe == os.path.abspath(out_dir) else f"cannot be created: {probe} is a file"
        raise ConfigError(f"{option} {out_dir}: {what}, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == os.path.abspath(out_dir) else f" (in {probe})"
        raise ConfigError(f"{option} {out_dir}: no permission to write there{where}")

"""Every command of `ppir` (ppir.commands.COMMANDS) against three kinds of bad input, from one table: a missing
input path, an output it cannot write (a path under a regular file: unwritable even for root), and a malformed
option value. Each gives exit code 2 and one error line, never a traceback, and leaves no output behind.

The commands run in this process (ppir.cli.run around the command's main, as tools/ and `ppir` run them): the
failures happen before any heavy work, so a fresh interpreter per case would only add Paddle's import time. A
malformed option is argparse's to refuse: its one line is `<prog>: error: ...` after the usage line.
A cell is None only where the command has no such argument, with the reason beside it.
"""
import os

import cv2
import numpy as np
import pytest

from bad_input_checks import error_lines, one_error, snapshot
from conftest import REPO, golden_file
from ppir.cli import run
from ppir.commands import COMMANDS, load

HINET = ["-c", os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml"), "-o", "model.wf=8"]
DEMO = ["-c", os.path.join(REPO, "configs", "demo", "mirnet_synthetic.yml")]
DEMO_WEIGHTS = os.path.join(REPO, "configs", "demo", "weights", "mirnet_synthetic.pdparams")


def table(ws):
    """command -> {kind: argv or (None, why)}; `ws` holds images/ (two pairs), export/ (a tiny HINet export with
    model.onnx), a regular file `blocker`, and nothing called `missing*`."""
    images, export, missing, blocked = ws["images"], ws["export"], ws["missing"], ws["blocked"]
    weights = golden_file("hinet_wf8_perturbed.npz")
    return {
        "train": {"missing": ["-c", missing + ".yml"],
                  "unwritable": [*DEMO, "-o", f"train.output_dir={blocked}", "train.iters=1"],
                  "malformed": [*DEMO, "--seed", "seven"]},
        "eval": {"missing": ["-c", missing + ".yml", "--weights", weights],
                 "unwritable": [*DEMO, "--weights", DEMO_WEIGHTS, "--output", blocked, "--max-images", "1"],
                 "malformed": [*HINET, "--weights", weights, "--max-images", "many"]},
        "predict": {"missing": [*HINET, "--weights", weights, "--input", missing, "--output", ws["out"]],
                    "unwritable": [*HINET, "--weights", weights, "--input", images + "/lq", "--output", blocked],
                    "malformed": [*HINET, "--weights", weights, "--input", images + "/lq", "--output", ws["out"],
                                  "--max-memory", "lots"]},
        "export": {"missing": [*HINET, "--weights", missing + ".pdparams", "--save-dir", ws["out"]],
                   "unwritable": [*HINET, "--weights", weights, "--save-dir", blocked],
                   "malformed": [*HINET, "--weights", weights, "--save-dir", ws["out"], "--input-shape", "1,3,x"]},
        "export-onnx": {"missing": ["--model_dir", missing],
                        "unwritable": ["--model_dir", export, "--save_file", blocked + "/m.onnx"],
                        "malformed": ["--model_dir", export, "--opset_version", "thirteen"]},
        "convert": {"missing": [*HINET, "--src", missing + ".pth", "--dst", ws["out"] + "/w.pdparams"],
                    "unwritable": [*HINET, "--src", weights, "--dst", blocked + "/w.pdparams"],
                    "malformed": [*HINET, "--src", weights, "--dst", ws["out"] + "/w.pdparams", "-o", "model.wf"]},
        "infer": {"missing": ["--model_dir", export, "--image_dir", missing],
                  "unwritable": ["--model_dir", export, "--image_dir", images + "/lq", "--save_dir", blocked],
                  "malformed": ["--model_dir", export, "--image_dir", images + "/lq", "--cpu_threads", "two"]},
        "infer-onnx": {"missing": ["--model_dir", export, "--image_dir", missing],
                       "unwritable": ["--model_dir", export, "--image_dir", images + "/lq", "--save_dir", blocked],
                       "malformed": ["--model_dir", export, "--image_dir", images + "/lq", "--use_gpu", "maybe"]},
        "serve": {"missing": ["--model_dir", missing, "--port", "0"],
                  "unwritable": (None, "writes no files (its log goes to stderr)"),
                  "malformed": ["--model_dir", export, "--port", "eighty"]},
        "client": {"missing": ["--image", missing + ".png", "--output", ws["out"] + "/r.png"],
                   # refused before the request: no server is needed to find out that the output cannot be written
                   "unwritable": ["--image", images + "/lq/a.png", "--output", blocked + "/r.png"],
                   "malformed": ["--image", images + "/lq/a.png", "--output", ws["out"] + "/r.png",
                                 "--timeout", "soon"]},
        "quickstart": {"missing": (None, "reads no input (it makes its own data)"),
                       "unwritable": ["--output", blocked],
                       "malformed": ["--iters", "ten"]},
        "model-info": {"missing": ["-c", missing + ".yml"],
                       "unwritable": [*DEMO, "--json", blocked + "/info.json"],
                       "malformed": [*DEMO, "--shape", "huge"]},
        "quant-report": {"missing": ["--model_dir", missing, "--dataset", images],
                         "unwritable": ["--model_dir", export, "--dataset", images, "--precisions", "fp32",
                                        "--output", blocked + "/report.md"],
                         "malformed": ["--model_dir", export, "--dataset", images, "--calib_num", "few"]},
        "make-synthetic-data": {"missing": ["--degradation", "rain", "--out", ws["out"], "--image-dir", missing],
                                "unwritable": ["--degradation", "rain", "--out", blocked, "--num", "1"],
                                "malformed": ["--degradation", "rain", "--out", ws["out"], "--size", "64"]},
        "vacc-infer": {"missing": ["--model_prefix", missing, "--backend", "onnxruntime", "--model_dir", export,
                                   "--image_dir", missing],
                       "unwritable": ["--model_prefix", "m", "--backend", "onnxruntime", "--model_dir", export,
                                      "--image_dir", images + "/lq", "--save_dir", blocked],
                       "malformed": ["--model_prefix", "m", "--backend", "onnxruntime", "--model_dir", export,
                                     "--image_dir", images + "/lq", "--shape", "64"]},
        "vacc-build-config": {"missing": (None, "writes configs for an ONNX file that may not exist yet (says so in a "
                                                 "note: vamc runs later, elsewhere)"),
                              "unwritable": ["--onnx", export + "/model.onnx", "--name", "t", "--shape", "64x64",
                                             "--out_dir", blocked],
                              "malformed": ["--onnx", export + "/model.onnx", "--name", "t", "--shape", "64by64"]},
        "vacc-calib-set": {"missing": ["--image_dir", missing, "--out_dir", ws["out"], "--shape", "32x32"],
                           "unwritable": ["--image_dir", images + "/lq", "--out_dir", blocked, "--shape", "32x32"],
                           "malformed": ["--image_dir", images + "/lq", "--out_dir", ws["out"], "--shape", "32"]},
    }


KINDS = ("missing", "unwritable", "malformed")


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_hinet_export):
    root = tmp_path_factory.mktemp("every_command")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        gt = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        lq = np.clip(gt + rng.normal(0, 20, gt.shape), 0, 255).astype(np.uint8)
        for sub, img in (("gt", gt), ("lq", lq)):
            os.makedirs(root / "images" / sub, exist_ok=True)
            cv2.imwrite(str(root / "images" / sub / name), img)
    (root / "blocker").write_text("keep me")
    return {"images": str(root / "images"), "export": tiny_hinet_export, "missing": str(root / "missing"),
            "blocked": str(root / "blocker" / "out"), "out": str(root / "out"), "root": root}


def test_the_table_covers_every_command():
    fake = {k: "x" for k in ("images", "export", "missing", "blocked", "out")}
    rows = table(fake)
    assert sorted(rows) == sorted(COMMANDS)
    for name, cells in rows.items():
        assert sorted(cells) == sorted(KINDS), name
        for kind, cell in cells.items():
            assert isinstance(cell, list) or (cell[0] is None and cell[1]), (name, kind)


CASES = [(name, kind) for name in sorted(COMMANDS) for kind in KINDS]


@pytest.mark.parametrize("name,kind", CASES)
def test_bad_input_is_one_line_and_exit_2(ws, capsys, monkeypatch, name, kind):
    argv = table(ws)[name][kind]
    if not isinstance(argv, list):
        pytest.skip(f"ppir {name}: {argv[1]}")
    monkeypatch.chdir(ws["root"])
    before = snapshot(ws["root"])
    main = load(name).main
    capsys.readouterr()
    try:
        code = run(main, [str(a) for a in argv])
    except SystemExit as e:  # argparse refuses a malformed option itself
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, f"ppir {name} ({kind}): exit {code}\n{err[-2000:]}"
    if kind == "malformed":
        error_lines(err)  # no traceback
        lines = [ln for ln in err.splitlines() if ": error: " in ln or ln.startswith("error: ")]
        assert len(lines) == 1, err[-2000:]
    else:
        line = one_error(err)
        assert "missing" in line if kind == "missing" else "blocker" in line, line
    assert (ws["root"] / "blocker").read_text() == "keep me"
    assert snapshot(ws["root"]) == before, f"ppir {name} ({kind}) changed files in the workspace"

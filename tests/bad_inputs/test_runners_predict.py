"""Bad inputs for tools/predict.py and both deploy runners (a tiny exported HINet): every case ends with the
fitting exit code and one-line messages, never a traceback, a lost input or a half-written file."""
import importlib.util
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data

from ppir.cli import run
from ppir.commands.infer import build_parser, run_command

from bad_input_checks import error_lines, snapshot
from conftest import REPO, golden_file

TOOLS = ("predict", "paddle", "onnxruntime")
RUNNERS = ("paddle", "onnxruntime")
SCRIPTS = {"predict": "tools/predict.py", "paddle": "deploy/inference_python/infer.py",
           "onnxruntime": "deploy/onnxruntime/infer.py"}
CONFIG = os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml")


@pytest.fixture(scope="module")
def model_dir(tiny_hinet_export):
    """conftest's tiny HINet (the weights predict.py loads too), exported with its ONNX model (shared by the run)."""
    return tiny_hinet_export


@pytest.fixture(scope="module")
def predict_tool():
    spec = importlib.util.spec_from_file_location("predict_tool", os.path.join(REPO, "tools", "predict.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def tool_args(tool, model_dir, inp, out, *extra):
    if tool == "predict":
        return ["-c", CONFIG, "-o", "model.wf=8", "--weights", golden_file("hinet_wf8_perturbed.npz"),
                "--input", str(inp), "--output", str(out), *map(str, extra)]
    return ["--model_dir", model_dir, "--image_dir", str(inp), "--save_dir", str(out), *map(str, extra)]


@pytest.fixture
def call(model_dir, predict_tool, capsys):
    """Run a tool in this process (ppir.cli.run: errors become one line + exit code; anything else raises)."""
    def go(tool, inp, out, *extra):
        main = predict_tool.main if tool == "predict" else (lambda a: run_command(a, tool))
        code = run(main, tool_args(tool, model_dir, inp, out, *extra))
        cap = capsys.readouterr()
        return code, cap.out, cap.err
    return go


def picture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, 512 - h), rng.integers(0, 512 - w)
    return np.ascontiguousarray(skimage.data.astronaut()[y:y + h, x:x + w, ::-1])


def temp_leftovers(folder):
    return [n for _, _, files in os.walk(folder) for n in files if re.search(r"\.ppir-\d+-[0-9a-f]+\.tmp$", n)]


@pytest.fixture
def inputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), picture(40, 50, 1))
    cv2.imwrite(str(src / "b.jpg"), picture(36, 44, 2))
    return src


@pytest.mark.parametrize("tool", TOOLS)
def test_output_is_the_input_folder(call, inputs, tool):
    before = snapshot(inputs)
    code, _, err = call(tool, inputs, inputs)
    assert code == 2 and len(error_lines(err)) == 1 and "is the input folder" in error_lines(err)[0]
    assert snapshot(inputs) == before


@pytest.mark.parametrize("tool", TOOLS)
def test_output_inside_the_input_folder(call, inputs, tool):
    before = snapshot(inputs)
    code, _, err = call(tool, inputs, inputs / "restored")
    assert code == 2 and len(error_lines(err)) == 1 and "is inside the input folder" in error_lines(err)[0]
    assert snapshot(inputs) == before and not (inputs / "restored").exists()


@pytest.mark.parametrize("tool", TOOLS)
def test_a_result_would_replace_a_single_input_file(call, inputs, tool):
    before = snapshot(inputs)
    code, _, err = call(tool, inputs / "a.png", inputs)
    assert code == 2 and len(error_lines(err)) == 1 and "would replace the input" in error_lines(err)[0]
    assert snapshot(inputs) == before


@pytest.mark.parametrize("tool", ["predict", "onnxruntime"])
def test_overwrite_allows_it(call, inputs, tool):
    before = snapshot(inputs)
    code, _, err = call(tool, inputs, inputs, "--overwrite")
    assert code == 0, err
    after = snapshot(inputs)
    assert after["b.jpg"] == before["b.jpg"] and after["a.png"] != before["a.png"] and "b.png" in after
    assert not temp_leftovers(inputs)


@pytest.mark.parametrize("tool", TOOLS)
def test_colliding_names_are_all_kept(call, tmp_path, tool):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    sizes = {"a.png": (40, 50), "a.jpg": (36, 44), "a.bmp": (30, 60)}
    for k, (name, (h, w)) in enumerate(sizes.items()):
        cv2.imwrite(str(src / name), picture(h, w, k))
    code, _, err = call(tool, src, out)
    assert code == 0, err
    assert "restored 3 of 3" in err + _
    assert sorted(os.listdir(out)) == ["a.bmp.png", "a.jpg.png", "a.png"]
    for name, (h, w) in sizes.items():  # each result is its own input's (the sizes tell them apart)
        saved = "a.png" if name == "a.png" else name + ".png"
        assert cv2.imread(str(out / saved)).shape == (h, w, 3)


def test_output_name_rule():
    """The documented rule, and a refusal (with the list) when even the rule cannot keep names apart."""
    from ppir.errors import ConfigError
    from ppir.infer.outputs import output_names

    got = output_names(["d/a.png", "d/a.jpg", "d/a.bmp", "d/b.jpg", "d/A.png"])
    assert got == {"d/a.png": "a.png", "d/a.jpg": "a.jpg.png", "d/a.bmp": "a.bmp.png", "d/b.jpg": "b.png",
                   "d/A.png": "A.png"}
    with pytest.raises(ConfigError, match=r"a\.jpg\.png <- a\.jpg, a\.jpg\.png\); rename them"):
        output_names(["d/a.png", "d/a.jpg", "d/a.jpg.png"])


@pytest.mark.parametrize("tool", TOOLS)
def test_output_path_under_a_file(call, inputs, tmp_path, tool):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    before = snapshot(tmp_path)
    for out, message in ((tmp_path / "notes.txt", "is a file, not a folder"),
                         (tmp_path / "notes.txt" / "sub", "notes.txt is a file")):
        code, _, err = call(tool, inputs, out)
        assert code == 2 and len(error_lines(err)) == 1 and message in error_lines(err)[0], err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("tool", TOOLS)
def test_read_only_output(call, inputs, tmp_path, monkeypatch, tool):
    """A folder without write permission. Tests run as root, for whom chmod stops nothing, so there the
    permission check is made to fail the way it does for a normal user (os.access on that folder)."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(locked)
                            else real_access(p, mode, **kw))
    code, _, err = call(tool, inputs, locked / "out")
    assert code == 2 and len(error_lines(err)) == 1 and "no permission to write there" in error_lines(err)[0], err
    assert os.listdir(locked) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_corrupt_image_among_good_ones(call, inputs, tmp_path, tool):
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    before = snapshot(inputs)
    code, _, err = call(tool, inputs, tmp_path / "out")
    assert code == 1 and len(error_lines(err)) == 1 and "broken.png" in error_lines(err)[0]
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png"]
    assert snapshot(inputs) == before and not temp_leftovers(tmp_path)


@pytest.fixture
def pairs(tmp_path):
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    lq.mkdir(), gt.mkdir()
    for k, name in enumerate(("a.png", "b.png", "c.png")):
        img = picture(32, 40, k)
        cv2.imwrite(str(lq / name), np.clip(img.astype(int) + 9, 0, 255).astype(np.uint8))
        cv2.imwrite(str(gt / name), img)
    return lq, gt


@pytest.mark.parametrize("tool", RUNNERS)
def test_output_is_the_ground_truth_folder(call, pairs, tool):
    lq, gt = pairs
    before = snapshot(gt)
    code, _, err = call(tool, lq, gt, "--gt_dir", gt)
    assert code == 2 and len(error_lines(err)) == 1 and "is the input folder" in error_lines(err)[0]
    assert snapshot(gt) == before


@pytest.mark.parametrize("tool", RUNNERS)
def test_missing_ground_truth_is_counted_apart(call, pairs, tmp_path, tool):
    """b.png is restored and saved but cannot be scored: 'restored 3 of 3', and b.png is named as unscored."""
    lq, gt = pairs
    os.remove(gt / "b.png")
    code, out, err = call(tool, lq, tmp_path / "out", "--gt_dir", gt)
    assert code == 1
    assert len(error_lines(err)) == 1 and "b.png" in error_lines(err)[0] and "not scored" in error_lines(err)[0]
    last = err.strip().splitlines()[-1]
    assert last.startswith("restored 3 of 3 image(s)") and "1 restored but not scored" in last and "b.png" in last
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png", "c.png"]
    assert len(re.findall(r"^image: \w\.png, psnr: ", out, re.M)) == 2


@pytest.mark.parametrize("tool", RUNNERS)
def test_tiny_images_say_they_have_no_ssim(call, tmp_path, tool):
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    lq.mkdir(), gt.mkdir()
    for name, (h, w) in {"dot.png": (1, 1), "strip.png": (3, 5), "fine.png": (24, 24)}.items():
        cv2.imwrite(str(lq / name), picture(h, w, h))
        cv2.imwrite(str(gt / name), picture(h, w, h))
    code, out, err = call(tool, lq, tmp_path / "out", "--gt_dir", gt)
    assert code == 0 and not error_lines(err), err
    lines = out.splitlines()
    for name in ("dot.png", "strip.png"):
        assert any(ln.startswith(f"image: {name}, psnr: ") and ", ssim: n/a, note: smaller than SSIM's 11x11"
                   in ln for ln in lines), out
    fine = [float(m[1]) for m in (re.match(r"image: fine\.png, psnr: [\d.inf]+, ssim: ([-\d.]+)$", ln)
                                  for ln in lines) if m]
    avg = [ln for ln in lines if ln.startswith("avg psnr: ")]
    assert len(fine) == 1 and len(avg) == 1
    assert re.fullmatch(rf"avg psnr: [\d.inf]+, avg ssim: {fine[0]:.4f}, ssim over: 1 of 3 image\(s\)", avg[0])


@pytest.mark.parametrize("tool", TOOLS)
def test_auto_tiling_over_the_memory_budget(call, tmp_path, monkeypatch, tool):
    """With the network's need fixed at 2000 bytes/pixel, a 32 MB budget cannot hold a 256x192 image whole
    (about 98 MB) and fits 112x112 tiles: sqrt((32 MiB - 96 B x 49152 px) / 2000) = 120, down to a multiple
    of 16. One note says so; the result is the explicit --tile 112 result exactly, and near the whole image
    (HINet's instance norm sees only the tile, so not within the 0.05 dB of local networks: docs/deploy)."""
    from ppir.infer import memory

    monkeypatch.setattr(memory, "measure_bytes_per_pixel", lambda *a: (2000.0, True))
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "big.png"), picture(192, 256, 5))
    runs = {"auto": ["--max-memory", "32M"], "tiled": ["--tile", "112"], "whole": ["--max-memory", "0"]}
    notes = {}
    for out, extra in runs.items():
        code, _, err = call(tool, src, tmp_path / out, *extra)
        notes[out] = [ln for ln in err.splitlines() if ln.startswith("note: ")]
        assert code == 0 and len(notes[out]) == (out == "auto"), err
    assert re.search(r"big\.png: 256x192 would need about 98 MB in one piece \(2000 bytes/pixel measured\), over "
                     r"the memory budget of 32 MB \(--max-memory\): restoring in 112x112 tiles",
                     notes["auto"][0]), notes
    auto, tiled, whole = (cv2.imread(str(tmp_path / d / "big.png")).astype(int) for d in runs)
    np.testing.assert_array_equal(auto, tiled)
    assert 10 * np.log10(255 ** 2 / np.mean((auto - whole) ** 2)) > 35  # measured: 38.3 dB for all three


def test_auto_tiling_measures_the_network(model_dir, tmp_path):
    """The real measurement, in a fresh process as a user runs it: a 48 MB budget is between the 80x80-tile
    need and the whole-image need of a 256x192 image for the bytes per pixel Paddle Inference measures
    (1600-3300 seen; tiles from 64 up to 7100, whole from 930 up)."""
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "big.png"), picture(192, 256, 5))
    args = tool_args("paddle", model_dir, src, tmp_path / "auto", "--max-memory", "48M")
    r = subprocess.run([sys.executable, SCRIPTS["paddle"], *args], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note: ")]
    assert len(notes) == 1 and re.search(r"\(\d+ bytes/pixel measured\)", notes[0]), r.stderr
    assert re.search(r"restoring in (\d+)x\1 tiles", notes[0])

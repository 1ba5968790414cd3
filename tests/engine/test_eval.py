"""tools/eval.py and ppir.engine.evaluator: table, JSON, saved images, and metric values checked directly."""
import json
import os

import numpy as np
import pytest
import yaml

from conftest import run_tool_here as run_tool  # in this process: the tool, not a fresh interpreter, is tested

import ppir
import paddle  # noqa: E402

from ppir.errors import ConfigError  # noqa: E402

MODEL = {"type": "MIMOUNet", "num_res": 1, "base_channel": 4}


def make_run(tmp_path, n=3, size=(37, 50)):
    """A config whose eval set has an odd size (not a multiple of 4: the evaluator must pad and crop back)."""
    cfg = {
        "model": MODEL,
        "datasets": {"val": {"type": "SyntheticDataset", "degradation": "gaussian_noise",
                             "images": ["chelsea", "coffee"], "size": list(size), "num_samples": n, "seed": 4}},
        "metrics": [{"type": "PSNR"}, {"type": "SSIM", "mode": "3d"}],
        "train": {"output_dir": str(tmp_path / "out")},
    }
    cfg_path = tmp_path / "eval.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    paddle.seed(11)
    model = ppir.build_model(cfg)
    from ppir.engine.trainer import init_like_torch

    init_like_torch(model)
    weights = tmp_path / "w.pdparams"
    ppir.save_weights(model, str(weights))
    return cfg, cfg_path, model, weights


def test_eval_tool_table_json_images_and_values(tmp_path):
    cfg, cfg_path, model, weights = make_run(tmp_path)
    out = tmp_path / "res"
    r = run_tool("eval", "-c", cfg_path, "--weights", weights, "--output", out, "--save-images", "2",
                 "--json", tmp_path / "copy.json", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for word in ("psnr", "ssim3d", "input", "restored", "gain", "3 image(s)"):
        assert word in r.stdout
    res = json.loads((out / "metrics.json").read_text())
    assert res == json.loads((tmp_path / "copy.json").read_text())
    assert res["images"] == 3 and len(res["per_image"]) == 3 and res["dataset"] == "val"

    # the same numbers computed directly: dygraph restore (pad + crop) and the metric functions
    from ppir.data import SyntheticDataset
    from ppir.infer.restorer import ImageRestorer
    from ppir.metrics import PSNR, SSIM

    ds = SyntheticDataset(degradation="gaussian_noise", images=["chelsea", "coffee"], size=[37, 50],
                          num_samples=3, seed=4)
    restore = ImageRestorer.for_model(model).restore
    psnr, ssim = PSNR(), SSIM(mode="3d")
    direct = []
    for i, row in enumerate(res["per_image"]):
        s = ds[i]
        lq, gt = s["lq"].transpose(1, 2, 0), s["gt"].transpose(1, 2, 0)
        restored = restore(lq)
        assert restored.shape == gt.shape == (37, 50, 3)
        assert row["name"] == s["name"]
        assert row["psnr"] == pytest.approx(psnr(restored, gt), abs=1e-6)
        assert row["ssim3d"] == pytest.approx(ssim(restored, gt), abs=1e-6)
        assert row["input_psnr"] == pytest.approx(psnr(lq, gt), abs=1e-9)
        direct.append(row["psnr"])
    assert res["metrics"]["psnr"] == pytest.approx(np.mean(direct), abs=1e-9)
    assert f"{res['metrics']['psnr']:.4f}" in r.stdout

    # --save-images 2: restored PNGs and side-by-side pictures (input | output | gt) for the first 2 only
    from ppir.data.image_io import read_image

    names = sorted(os.listdir(out / "images"))
    assert len(names) == 4 and sum(n.endswith("_compare.png") for n in names) == 2
    first = res["per_image"][0]["name"]
    pic = read_image(str(out / "images" / f"{first}_compare.png"))
    assert pic.shape == (37, 3 * 50 + 2 * 4, 3)
    s = ds[0]
    assert np.abs(pic[:, :50] - s["lq"].transpose(1, 2, 0)).max() <= 0.5 / 255 + 1e-6
    assert np.abs(pic[:, -50:] - s["gt"].transpose(1, 2, 0)).max() <= 0.5 / 255 + 1e-6
    restored_png = read_image(str(out / "images" / f"{first}.png"))
    assert np.abs(pic[:, 54:104] - restored_png).max() == 0


def test_eval_baselines_are_the_methods_best_on_the_same_images(tmp_path):
    """The classical rows for the dataset's degradation (OpenCV filters, and blind BM3D when bm3d is installed),
    each at its best parameter on these very images, with seconds per image."""
    _, cfg_path, _, weights = make_run(tmp_path, n=2, size=(40, 48))
    r = run_tool("eval", "-c", cfg_path, "--weights", weights, "--output", tmp_path / "res", "--baselines",
                 timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "classical methods, each at its best parameter on these images:" in r.stdout
    got = json.loads((tmp_path / "res" / "metrics.json").read_text())["baselines"]

    from ppir.baselines import best_filters, methods_for
    from ppir.data import SyntheticDataset
    from ppir.metrics import PSNR, SSIM

    ds = SyntheticDataset(degradation="gaussian_noise", images=["chelsea", "coffee"], size=[40, 48],
                          num_samples=2, seed=4)
    pairs = [(ds[i]["lq"].transpose(1, 2, 0), ds[i]["gt"].transpose(1, 2, 0)) for i in range(2)]
    want = best_filters(pairs, [PSNR(), SSIM(mode="3d")], methods_for("gaussian_noise"))
    assert [g["filter"] for g in got] == [f.name for f in methods_for("gaussian_noise")]
    for g, w in zip(got, want):
        assert g["seconds_per_image"] > 0
        assert (g["value"], g["psnr"], g["ssim3d"]) == (w.value, pytest.approx(w.scores["psnr"]),
                                                        pytest.approx(w.scores["ssim3d"]))
        assert f"{w.scores['psnr']:.4f}" in r.stdout
        # a best value at the end of the grid is flagged in the JSON and on its printed row
        assert g["at_edge"] == w.at_edge
        row = next(line for line in r.stdout.splitlines() if f"{w.scores['psnr']:.4f}" in line)
        assert ("the end of its grid" in row) == w.at_edge


def test_eval_tool_errors_are_one_line(tmp_path):
    cfg, cfg_path, _, weights = make_run(tmp_path)
    r = run_tool("eval", "-c", cfg_path, "--weights", weights, "--dataset", "test", timeout=120)
    assert r.returncode == 2 and "error:" in r.stderr and "no datasets.test" in r.stderr
    r = run_tool("eval", "-c", cfg_path, "--weights", tmp_path / "missing.pdparams", timeout=120)
    assert r.returncode == 2 and "weights file not found" in r.stderr


def test_evaluate_tiles_grids_and_self_ensemble(tmp_path):
    from ppir.data import SyntheticDataset
    from ppir.engine.evaluator import evaluate, format_table

    paddle.seed(1)
    hinet = ppir.build_model({"type": "HINet", "wf": 4, "depth": 2})
    ds = SyntheticDataset(images=["chelsea"], size=[40, 52], num_samples=2, seed=1)
    metrics = [{"type": "PSNR"}]
    whole = evaluate(hinet, ds, metrics, score_input=True)
    tiled = evaluate(hinet, ds, metrics, tile=24, tile_overlap=8)
    grids = evaluate(hinet, ds, metrics, tile=24, grids=True)
    ens = evaluate(hinet, ds, metrics, self_ensemble=True, max_images=1)
    for res in (whole, tiled, grids, ens):
        assert np.isfinite(res.metrics["psnr"])
    assert ens.count == 1 and whole.count == 2
    assert "input" in format_table(whole) and "restored" in format_table(tiled)
    assert hinet.training  # evaluate() restores the mode it found
    with pytest.raises(ConfigError, match="multiples of 2"):
        evaluate(hinet, ds, metrics, tile=25)
    with pytest.raises(ConfigError, match="grids needs"):
        evaluate(hinet, ds, metrics, grids=True)

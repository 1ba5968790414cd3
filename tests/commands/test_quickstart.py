"""ppir quickstart: where its training starts (the shipped demo weights, or from scratch, said either way), its
metrics table with the classical filters' rows, and one shortened run end to end."""
import os

import paddle
import pytest

import ppir
from conftest import REPO
from ppir.baselines import BaselineResult
from ppir.commands import quickstart

MODELS = tuple(sorted(quickstart.DEMOS))


def save_demo_weights(folder, model):
    """A real weights file for the demo network: a freshly built (seeded) demo model, saved where the quick start
    looks for shipped weights."""
    paddle.seed(0)
    net = ppir.build_model(os.path.join(REPO, "configs", "demo", f"{quickstart.DEMOS[model]}.yml"))
    path = os.path.join(folder, f"{quickstart.DEMOS[model]}.pdparams")
    ppir.save_weights(net, path)
    return path


@pytest.mark.parametrize("model", MODELS)
def test_each_demo_config_points_to_the_weights_the_quick_start_uses(model):
    """The config's repo-relative train.pretrained and the quick start's package path are the same file."""
    stem = quickstart.DEMOS[model]
    cfg = ppir.load_config(os.path.join(REPO, "configs", "demo", f"{stem}.yml"))
    assert os.path.realpath(os.path.join(REPO, cfg["train"]["pretrained"])) == \
        os.path.realpath(quickstart.shipped_weights(model))
    # the recipe that made those weights trains the same network from scratch, or warm-starts from another
    # demo's shipped weights whose own recipe trains from scratch (MIMO-UNet deblurring from its noise weights)
    pre = ppir.load_config(os.path.join(REPO, "configs", "demo", f"{stem}_pretrain.yml"))
    assert pre["model"] == cfg["model"]
    start = pre["train"]["pretrained"]
    if start:
        other = os.path.splitext(os.path.basename(start))[0]
        assert other != stem and other in quickstart.DEMOS.values()
        assert ppir.load_config(os.path.join(REPO, "configs", "demo", f"{other}_pretrain.yml"))["train"]["pretrained"] == ""


def test_shipped_weights_are_fine_tuned_when_present(tmp_path, monkeypatch):
    monkeypatch.setattr(quickstart, "WEIGHTS_DIR", str(tmp_path))
    path = save_demo_weights(str(tmp_path), "hinet")
    start = quickstart.training_start("hinet")
    assert start.overrides == (f"train.pretrained={path}",) and os.path.isabs(path)
    assert start.kind == "fine-tuned from shipped weights"
    assert start.note.startswith(f"fine-tuning the shipped demo weights {path}")
    assert "configs/demo/hinet_synthetic_pretrain.yml" in start.note and "docs/demo_weights.md" in start.note
    # --from-scratch ignores them
    scratch = quickstart.training_start("hinet", from_scratch=True)
    assert scratch.overrides == ("train.pretrained=",) and scratch.kind == "from scratch"
    assert "--from-scratch" in scratch.note and path not in scratch.note


def test_missing_weights_train_from_scratch_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(quickstart, "WEIGHTS_DIR", str(tmp_path))
    start = quickstart.training_start("mirnet")
    assert start.overrides == ("train.pretrained=",) and start.kind == "from scratch"
    assert start.note.startswith(f"no shipped demo weights at {tmp_path / 'mirnet_synthetic.pdparams'}: training "
                                 "from scratch")


def test_help_says_from_scratch_does_not_reach_the_filters(capsys):
    with pytest.raises(SystemExit):
        quickstart.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--from-scratch" in text and "does not reach the classical filters" in text
    assert quickstart.parse_args(["--from-scratch"]).from_scratch and not quickstart.parse_args([]).from_scratch


def fake_filter(name, value, psnr, ssim, at_edge=False, seconds=float("nan")):
    return BaselineResult(name, "p", value, {"psnr": psnr, "ssim": ssim}, at_edge, seconds)


def table(filters, after, start="fine-tuned from shipped weights"):
    eval_json = {"images": 8, "backend": "paddle", "metrics": {"psnr": 31.0, "ssim3d": 0.9},
                 "input_metrics": {"psnr": 20.0, "ssim3d": 0.5}}
    before = {"a.png": (20.0, 0.40), "b.png": (22.0, 0.50)}
    return quickstart.metrics_table("hinet", eval_json, before, after, 100, filters, start, 0.0125, ("a note",))


def test_metrics_table_has_a_row_per_filter_and_the_margin_over_the_best():
    filters = [fake_filter("blur", 1.5, 27.0, 0.70, seconds=0.002), fake_filter("nlm", 16, 28.25, 0.80, seconds=1.5)]
    text = table(filters, {"a.png": (29.0, 0.85), "b.png": (30.0, 0.87)})
    lines = text.splitlines()
    assert lines[0] == "# Quick start: hinet demo (fine-tuned from shipped weights, 100 training steps)"
    assert "| images | count | PSNR (dB) | SSIM | seconds per image |" in lines
    assert "| test images, blur, p 1.5 | 2 | 27.00 | 0.7000 | 0.002 |" in lines
    assert "| test images, nlm, p 16 | 2 | 28.25 | 0.8000 | 1.5 |" in lines
    assert "| test images, restored (Paddle Inference) | 2 | 29.50 | 0.8600 | 0.0125 |" in lines
    assert "a note" in lines
    # filters sit between the degraded input and the restored row
    rows = [ln for ln in lines if ln.startswith("| test images")]
    assert [r.split(" | ")[0] for r in rows] == ["| test images, degraded input", "| test images, blur, p 1.5",
                                                 "| test images, nlm, p 16",
                                                 "| test images, restored (Paddle Inference)"]
    # restored mean 29.5 vs the best filter's 28.25
    assert "restored vs best classical method: +1.25 dB PSNR (nlm, p 16)" in lines
    assert "†" not in text


def test_metrics_table_says_from_scratch_and_a_loss_and_marks_a_grid_edge():
    filters = [fake_filter("blur", 4, 27.0, 0.70, at_edge=True), fake_filter("nlm", 16, 26.0, 0.80)]
    text = table(filters, {"a.png": (25.0, 0.6), "b.png": (26.0, 0.6)}, start="from scratch")
    assert text.startswith("# Quick start: hinet demo (from scratch, 100 training steps)\n")
    assert "restored vs best classical method: -1.50 dB PSNR (blur, p 4)" in text
    assert "| test images, blur, p 4 † | 2 | 27.00 | 0.7000 | - |" in text
    assert "† the best value is at the end of the method's grid" in text


def test_one_step_quick_start_fine_tunes_shipped_weights_end_to_end(tmp_path, monkeypatch, capfd):
    """`--iters 1` of the MIMO-UNet (deblurring) demo with a shipped weights file: every step runs, the trainer
    loads those weights, and metrics.md has the deblurring rows (the oracles with the true kernels the data
    step wrote) scored on the test images the run restored, and the network's seconds per image."""
    weights_dir = tmp_path / "weights"
    monkeypatch.setattr(quickstart, "WEIGHTS_DIR", str(weights_dir))
    path = save_demo_weights(str(weights_dir), "mimo_unet")
    out = tmp_path / "qs"
    monkeypatch.chdir(tmp_path)  # any folder: the demo config comes from the package, the weights by full path
    assert quickstart.main(["--model", "mimo_unet", "--iters", "1", "--output", str(out)]) == 0
    printed = capfd.readouterr().out
    assert f"fine-tuning the shipped demo weights {path}" in printed
    log = (out / "train" / "train.log").read_text(encoding="utf-8")
    assert f"loaded pretrained weights {path}" in log
    text = (out / "metrics.md").read_text(encoding="utf-8")
    assert text.startswith("# Quick start: mimo_unet demo (fine-tuned from shipped weights, 1 training steps)")
    assert text in printed  # the console shows the same table
    from ppir.baselines import methods_for

    for f in methods_for("motion_blur"):
        assert f"| test images, {f.name}, {f.param} " in text
    assert "restored vs best classical method: " in text and " dB PSNR (" in text
    restored_row = next(ln for ln in text.splitlines() if ln.startswith("| test images, restored"))
    assert float(restored_row.rstrip(" |").split(" | ")[-1]) > 0  # the runner's seconds per image
    names = [f"{n}_{i:05d}.png" for i, n in enumerate(quickstart.TEST_IMAGES.split(",") * quickstart.TEST_DRAWS)]
    assert sorted(os.listdir(out / "restored")) == sorted(names)
    assert sorted(os.listdir(out / "data" / "kernel")) == sorted(n.replace(".png", ".npy") for n in names)

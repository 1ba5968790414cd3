"""Building from config specs (`Registry.build`) and validation that does not depend on what was imported."""
import json
import os
import subprocess
import sys

import pytest
import yaml

import ppir
from ppir.data import build_dataset
from ppir.errors import ConfigError, DatasetError
from ppir.registry import DATASETS, LOSSES, METRICS, MODELS, OPTIMIZERS, SCHEDULERS, Registry, did_you_mean

from conftest import REPO, run_tool

DEMO = os.path.join(REPO, "configs", "demo", "hinet_synthetic.yml")

# Each misspelt key in a plain section, and the key it should be taken for.
MISSPELT = [("export", "roundng", "half_up", "rounding"), ("train", "iter", 5, "iters"),
            ("val", "max_image", 2, "max_images")]


def demo_with(tmp_path, section, key, value):
    data = yaml.safe_load(open(DEMO, encoding="utf-8"))
    data.pop("_base_", None)
    data.setdefault(section, {})[key] = value
    path = tmp_path / f"bad_{section}.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def fresh_python(code: str) -> dict:
    """Run `code` in a new interpreter (nothing imported but what it imports); it prints one JSON line last."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ validation vs import state
@pytest.mark.parametrize("section,key,value,meant", MISSPELT, ids=[m[0] for m in MISSPELT])
def test_plain_sections_are_checked_whatever_was_imported(tmp_path, section, key, value, meant):
    """Only ppir.config is imported: neither ppir.export nor the engine (which used to register the sections)."""
    path = demo_with(tmp_path, section, key, value)
    out = fresh_python(
        "import json, sys\n"
        "from ppir.config import load_config\n"
        "from ppir.errors import ConfigError\n"
        "before = sorted(m for m in ('ppir.export', 'ppir.engine', 'ppir.engine.trainer') if m in sys.modules)\n"
        f"try:\n    load_config({path!r}); msg = None\n"
        "except ConfigError as e:\n    msg = str(e)\n"
        "print(json.dumps({'before': before, 'msg': msg}))\n")
    assert out["before"] == []
    assert out["msg"] is not None, f"a misspelt {section}.{key} was accepted"
    assert out["msg"].startswith(path) and f"unknown key '{section}.{key}'" in out["msg"]
    assert f"did you mean '{meant}'" in out["msg"]


def test_config_alone_imports_no_export_or_engine(tmp_path):
    """Validating a config with only plain sections loads no network, data or deployment code."""
    path = tmp_path / "plain.yml"
    path.write_text("train: {iters: 3}\nval: {dataset: ''}\nexport: {rounding: half_up}\n")
    out = fresh_python(
        "import json, sys\n"
        "from ppir.config import load_config\n"
        f"cfg = load_config({str(path)!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m in ('ppir.export', 'ppir.engine', 'ppir.data', "
        "'ppir.losses', 'ppir.metrics'))))\n")
    assert out == []


@pytest.mark.parametrize("section,key,value,meant", MISSPELT, ids=[m[0] for m in MISSPELT])
def test_train_tool_refuses_a_misspelt_plain_key(tmp_path, section, key, value, meant):
    path = demo_with(tmp_path, section, key, value)
    out_dir = tmp_path / "run"
    r = run_tool("train", "-c", path, "-o", f"train.output_dir={out_dir}", timeout=300)
    lines = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert f"unknown key '{section}.{key}'" in lines[0] and f"did you mean '{meant}'" in lines[0]
    assert not out_dir.exists()  # refused before anything was written


def test_model_info_refuses_a_misspelt_export_key():
    r = run_tool("model_info", "-c", DEMO, "-o", "export.tile_overlp=8", timeout=300)
    assert r.returncode == 2, r.stderr
    assert "error: -o export.tile_overlp: unknown key 'export.tile_overlp' (did you mean 'tile_overlap'?)" in r.stderr


def test_registries_load_their_own_classes():
    """A registry looked up before its module was imported still knows every class (it imports the module)."""
    out = fresh_python(
        "import json, sys\n"
        "from ppir.registry import LOSSES, SCHEDULERS\n"
        "before = [m for m in ('ppir.losses', 'ppir.engine.optim') if m in sys.modules]\n"
        "print(json.dumps({'before': before, 'losses': LOSSES.names(), 'cosine': 'CosineAnnealing' in SCHEDULERS}))\n")
    assert out["before"] == []
    assert "PSNRLoss" in out["losses"] and "L1Loss" in out["losses"] and out["cosine"]


# ------------------------------------------------------------------------------------------ one build helper
@pytest.mark.parametrize("registry,place,spec,meant", [
    (MODELS, "model", {"type": "HINett"}, "HINet"),
    (DATASETS, "datasets.train", {"type": "SyntheticDatset"}, "SyntheticDataset"),
    (LOSSES, "loss", {"type": "L1loss"}, "L1Loss"),
    (METRICS, "metrics.0", {"type": "PNSR"}, "PSNR"),
    (OPTIMIZERS, "optimizer", {"type": "Adamw"}, "AdamW"),
    (SCHEDULERS, "lr_scheduler", {"type": "CosineAnealing"}, "CosineAnnealing"),
])
def test_every_registry_reports_an_unknown_type_the_same_way(registry, place, spec, meant):
    with pytest.raises(ConfigError) as e:
        registry.build(spec, place, "cfg.yml")
    assert str(e.value).startswith(f"cfg.yml: {place}.type: unknown {registry.kind} type {spec['type']!r}")
    assert f"(did you mean {meant!r}?)" in str(e.value)


def test_build_names_the_place_and_key_of_a_bad_argument():
    with pytest.raises(ConfigError, match=r"^cfg.yml: unknown key 'loss.weight' for L1Loss "
                                          r"\(did you mean 'loss_weight'\?\); allowed: loss_weight$"):
        LOSSES.build({"type": "L1Loss", "weight": 2.0}, "loss", "cfg.yml")
    with pytest.raises(ConfigError, match=r"^cfg.yml: optimizer.lr must be float .*got str 'fast'$"):
        OPTIMIZERS.build({"type": "Adam", "lr": "fast"}, "optimizer", "cfg.yml")
    with pytest.raises(ConfigError, match=r"^cfg.yml: loss needs a 'type' \(one of: .*L1Loss"):
        LOSSES.build({"loss_weight": 1.0}, "loss", "cfg.yml")
    with pytest.raises(ConfigError, match=r"^metrics.1 must be a mapping with a 'type'"):
        METRICS.build("PSNR", "metrics.1")  # no source: the message starts with the place


def test_build_puts_the_place_before_the_class_own_error():
    with pytest.raises(ConfigError, match=r"^cfg.yml: metrics.0: PSNR: crop_border must be an integer >= 0"):
        ppir.metrics.MetricSet([{"type": "PSNR", "crop_border": -1}], "cfg.yml")
    with pytest.raises(ConfigError, match=r"^cfg.yml: lr_scheduler: MultiStep: milestones must be increasing"):
        SCHEDULERS.build({"type": "MultiStep", "milestones": [5, 2]}, "lr_scheduler", "cfg.yml")


def test_build_reports_a_missing_required_argument():
    table = Registry("widget")

    @table.register
    class Widget:
        def __init__(self, size, colour="red"):
            self.size, self.colour = size, colour

    with pytest.raises(ConfigError, match=r"^cfg.yml: widgets.a needs 'size' for Widget$"):
        table.build({"type": "Widget", "colour": "blue"}, "widgets.a", "cfg.yml")
    w = table.build({"type": "Widget"}, "widgets.a", "cfg.yml", size=4)
    assert (w.size, w.colour) == (4, "red")  # `extra` arguments come from the caller, not the config


def test_build_dataset_lives_in_data_and_keeps_the_error_kinds(tmp_path):
    cfg = ppir.load_config({"datasets": {"train": {"type": "SIDDDataset", "root": str(tmp_path / "none")}}})
    with pytest.raises(DatasetError) as e:
        build_dataset(cfg, "train")
    assert str(e.value).startswith("datasets.train: SIDDDataset") and str(tmp_path / "none") in str(e.value)
    with pytest.raises(ConfigError, match=r"^<dict>: no datasets.val section \(datasets defined: train\)$"):
        build_dataset(cfg, "val")
    cfg = ppir.load_config({"datasets": {"val": {"type": "SyntheticDataset", "degradation": "gaussian_noise",
                                                 "images": ["astronaut"], "size": [32, 32], "num_samples": 2}}})
    assert len(build_dataset(cfg, "val")) == 2


def test_did_you_mean():
    assert did_you_mean("rounding_", ["rounding", "tile"]) == " (did you mean 'rounding'?)"
    assert did_you_mean("zzz", ["rounding", "tile"]) == ""
    assert did_you_mean("Adamw", ["Adam", "AdamW"]) == " (did you mean 'AdamW'?)"  # same letters first

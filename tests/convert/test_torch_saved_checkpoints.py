"""The converter on files PyTorch itself saved (tests/fixtures/torch, made by make_checkpoints.py there with
torch 2.13.0 in a throwaway environment): one tiny checkpoint of each network in its official wrapping (HINet
{'params'} zip .pth, MIMO-UNet+ {'model'} zip .pkl, MIRNet {'epoch', 'state_dict'} legacy-format .pth with
DataParallel prefixes). `ppir convert` runs on each in this process, and every tensor of the .pdparams it writes
is compared with the value that was saved (drawn again from its seed, or the golden file's), so the readers are
checked against torch's own serializer, not only against the suite's writer (tests/torch_format.py)."""
import json
import os
import sys
import zipfile

import numpy as np
import pytest

import ppir
from conftest import REPO, golden_file
from ppir.cli import run
from ppir.commands import load
from ppir.convert import read_paddle_pdparams, read_torch_checkpoint

HERE = os.path.join(REPO, "tests", "fixtures", "torch")
sys.path.insert(0, HERE)
from make_checkpoints import draw  # noqa: E402  (the values the files hold, without torch)

with open(os.path.join(HERE, "manifest.json"), encoding="utf-8") as f:
    MANIFEST = json.load(f)


def test_every_network_has_a_torch_saved_checkpoint():
    assert sorted(e["arch"] for e in MANIFEST.values()) == ["HINet", "MIMOUNetPlus", "MIRNet"]
    for entry in MANIFEST.values():
        path = os.path.join(HERE, entry["file"])
        assert os.path.isfile(path), f"{path} is missing (tests/fixtures/torch/make_checkpoints.py makes it)"
        # torch's zip format for HINet and MIMO-UNet+, its legacy pickle stream for MIRNet, as released upstream
        assert zipfile.is_zipfile(path) == (entry["wrap"] != "state_dict"), path


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_reader_sees_what_torch_saved(name):
    entry = MANIFEST[name]
    obj = read_torch_checkpoint(os.path.join(HERE, entry["file"]))
    state = obj[entry["wrap"]]
    if entry["wrap"] == "state_dict":
        assert obj["epoch"] == 60
        state = {k[len("module."):]: v for k, v in state.items()}
    want = draw(entry)
    assert list(state) == list(want)
    for key, value in want.items():
        assert state[key].dtype == np.float32 and np.array_equal(state[key], value), key


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_convert_writes_the_saved_values(name, tmp_path, capsys):
    entry = MANIFEST[name]
    overrides = [f"model.{k}={v}" for k, v in entry["kwargs"].items()]
    dst = tmp_path / "converted.pdparams"
    code = run(load("convert").main, ["-c", os.path.join(REPO, entry["config"]), "-o", *overrides,
                                      "--src", os.path.join(HERE, entry["file"]), "--dst", str(dst)])
    assert code == 0, capsys.readouterr().err[-2000:]
    converted = read_paddle_pdparams(str(dst))
    if entry.get("golden"):
        # MIRNet's file holds the golden tensors: the converted weights are what loading the golden file gives
        model = ppir.build_model({"type": entry["arch"], **entry["kwargs"]})
        assert ppir.load_weights(model, golden_file(entry["golden"])).ok
        want = {k: v.numpy() for k, v in model.state_dict().items()}
    else:
        saved = draw(entry)
        want = {paddle_key: saved[torch_key] for torch_key, paddle_key, _ in entry["tensors"]}
    assert sorted(converted) == sorted(want)
    for key, value in want.items():
        assert np.array_equal(converted[key], value), key

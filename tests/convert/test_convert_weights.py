"""tools/convert_weights.py on official-format checkpoints written from the golden fixtures.

The checkpoints are laid out as the authors released them (HINet {'params'}, MIMO-UNet {'model'}, MIRNet
{'state_dict'} with 'module.' prefixes, zip and legacy torch formats), written without PyTorch by
tests/torch_format.py. A converted file must reproduce the official outputs.
"""
import collections
import os
import zipfile

import numpy as np
import paddle
import pytest

import ppir

from conftest import golden_file, golden_files, golden_meta, run_tool
from torch_format import official_checkpoint, write_torch_zip

CONFIG_FOR = {"HINet": "configs/hinet_sidd_1x.yml", "MIMOUNet": "configs/mimo_unet_gopro.yml",
              "MIRNet": "configs/mirnet_sidd.yml"}


def torch_state(path):
    with np.load(path, allow_pickle=False) as d:
        return collections.OrderedDict((k[len("param/"):], d[k]) for k in d.files if k.startswith("param/"))


def overrides_for(meta):
    return [f"model.{k}={v}" for k, v in meta["constructor_kwargs"].items()]


def convert(src, dst, meta, *extra):
    return run_tool("convert_weights", "-c", CONFIG_FOR[meta["arch"]], "-o", *overrides_for(meta),
                    "--src", src, "--dst", dst, *extra)


@pytest.mark.parametrize("golden", golden_files(), ids=lambda p: os.path.basename(p)[:-4])
def test_official_checkpoint_converts_and_reproduces_outputs(require_golden, tmp_path, golden):
    meta = golden_meta(golden)
    ext = ".pkl" if meta["arch"] == "MIMOUNet" else ".pth"
    src = official_checkpoint(meta["arch"], torch_state(golden), str(tmp_path / f"official{ext}"))
    dst = tmp_path / "converted.pdparams"
    r = convert(src, dst, meta)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and os.path.isfile(dst)
    model = ppir.build_model(CONFIG_FOR[meta["arch"]], overrides_for(meta))
    report = ppir.load_weights(model, str(dst))
    assert report.ok and report.description.startswith("paddle pdparams")
    model.eval()
    with np.load(golden) as d, paddle.no_grad():
        out = model(paddle.to_tensor(d["input/1"]))
        out = out[-1] if isinstance(out, list) else out
        last = sorted(k for k in d.files if k.startswith("output/1/"))[-1]
        np.testing.assert_allclose(out.numpy(), d[last], atol=1e-5, rtol=1e-5)


@pytest.fixture
def hinet_case(require_golden, tmp_path):
    path = golden_file("hinet_wf8_perturbed.npz")
    return golden_meta(path), torch_state(path)


def test_missing_key_fails_by_name_and_writes_nothing(hinet_case, tmp_path):
    meta, state = hinet_case
    del state["down_path_1.2.norm.weight"]
    src = write_torch_zip(str(tmp_path / "a.pth"), {"params": state})
    dst = tmp_path / "out.pdparams"
    dst.write_bytes(b"previous result")
    r = convert(src, dst, meta)
    assert r.returncode == 2
    assert "1 missing (down_path_1.2.norm.scale)" in r.stderr and "Traceback" not in r.stderr
    assert dst.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []

    r = convert(src, dst, meta, "--allow-partial")
    assert r.returncode == 0, r.stderr
    assert "partial: 1 missing (down_path_1.2.norm.scale)" in r.stdout
    assert read_back(dst)["down_path_1.0.norm.scale"].shape == (4,)


def read_back(path):
    from ppir.convert.paddle_pickle import read_paddle_pdparams
    return read_paddle_pdparams(str(path))


def test_unexpected_and_mis_shaped_keys_are_named(hinet_case, tmp_path):
    meta, state = hinet_case
    state["extra.weight"] = np.zeros(3, np.float32)
    state["last.weight"] = np.zeros((3, 8, 5, 5), np.float32)
    src = write_torch_zip(str(tmp_path / "b.pth"), {"params": state})
    r = convert(src, tmp_path / "out.pdparams", meta)
    assert r.returncode == 2
    assert "1 unexpected (extra.weight)" in r.stderr
    assert "last.weight: file (3, 8, 5, 5) vs model (3, 8, 3, 3)" in r.stderr
    assert not (tmp_path / "out.pdparams").exists()


def test_wrapper_key_choice(hinet_case, tmp_path):
    meta, state = hinet_case
    src = write_torch_zip(str(tmp_path / "c.pth"), {"ema_weights": state, "iter": 3})
    r = convert(src, tmp_path / "out.pdparams", meta)
    assert r.returncode == 2 and "no state dict found" in r.stderr and "'ema_weights'" in r.stderr
    r = convert(src, tmp_path / "out.pdparams", meta, "--param-key", "ema_weights")
    assert r.returncode == 0, r.stderr


def test_bare_npz_state_dict(hinet_case, tmp_path):
    meta, state = hinet_case
    np.savez(tmp_path / "w.npz", **state)
    r = convert(tmp_path / "w.npz", tmp_path / "out.pdparams", meta)
    assert r.returncode == 0, r.stderr
    got = read_back(tmp_path / "out.pdparams")
    np.testing.assert_array_equal(got["down_path_1.1.norm.scale"], state["down_path_1.1.norm.weight"])


def test_hostile_checkpoint_never_runs_its_payload(hinet_case, tmp_path):
    meta, _ = hinet_case
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    import pickle
    src = tmp_path / "evil.pth"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"params": {"w": Payload()}}, protocol=2))
    r = convert(src, tmp_path / "out.pdparams", meta)
    assert r.returncode == 2
    assert "refused to load" in r.stderr and "posix.system" in r.stderr
    assert not marker.exists() and not (tmp_path / "out.pdparams").exists()


def test_truncated_checkpoint(hinet_case, tmp_path):
    meta, state = hinet_case
    whole = write_torch_zip(str(tmp_path / "whole.pth"), {"params": state})
    data = open(whole, "rb").read()
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    r = convert(tmp_path / "half.pth", tmp_path / "out.pdparams", meta)
    assert r.returncode == 2 and "half.pth" in r.stderr and "Traceback" not in r.stderr
    assert len([l for l in r.stderr.splitlines() if l.startswith("error:")]) == 1
    assert not (tmp_path / "out.pdparams").exists()


def test_weights_path_resolution(tmp_path):
    """TIPC drivers pass `<save_dir>/latest` without an extension; checkpoint folders hold model.pdparams."""
    model = ppir.build_model({"type": "MIMOUNet", "num_res": 0})
    ppir.save_weights(model, str(tmp_path / "latest.pdparams"))
    assert ppir.load_weights(model, str(tmp_path / "latest")).ok
    (tmp_path / "ckpt").mkdir()
    ppir.save_weights(model, str(tmp_path / "ckpt" / "model.pdparams"))
    assert ppir.load_weights(model, str(tmp_path / "ckpt")).ok
    with pytest.raises(ppir.CheckpointError, match="weights file not found: .*nothing"):
        ppir.load_weights(model, str(tmp_path / "nothing"))

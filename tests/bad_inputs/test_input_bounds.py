"""Issue 25, inputs that would expand before a check: weights files bounded by what they hold (shared-children
pickle graphs, .npz arrays declared larger than the archive could inflate to), YAML aliases of aliases, values
quoted in messages, absurd network sizes (cases 9, 10, 11). Hostile files are made in tmp_path."""
import os
import pickle
import struct
import time
import zipfile

import numpy as np
import pytest

from bad_input_checks import one_error
from conftest import REPO
from test_train_export import tool

import ppir  # noqa: E402
from ppir.errors import CheckpointError, ConfigError  # noqa: E402


# ---------------------------------------------------------------------------------------- case 9: weights files
def test_a_pdparams_whose_dicts_share_children_is_refused_at_once(tmp_path):
    node = {"w": np.zeros(1, np.float32)}
    for _ in range(30):  # 2^30 paths through 31 dicts
        node = {"a": node, "b": node}
    path = tmp_path / "shared.pdparams"
    path.write_bytes(pickle.dumps(node, protocol=2))
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as e:
        ppir.load_weights(ppir.build_model({"type": "HINet", "wf": 4, "depth": 2}), str(path))
    assert time.perf_counter() - start < 10
    assert str(e.value) == (f"{path}: the .pdparams puts one dict under several keys (a shared or circular "
                            f"container), which paddle.save never writes; refused")


def npz_bomb(path, declared_shape, payload_bytes):
    """A .npz whose one member's .npy header declares `declared_shape` float32, followed by zeros."""
    descr = {"descr": "<f4", "fortran_order": False, "shape": tuple(declared_shape)}
    header = repr(descr).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * payload_bytes
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.npy", npy)


def test_an_npz_declaring_more_than_its_bytes_can_hold_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.npz"
    npz_bomb(path, ((3 << 30) // 4,), 3 << 20)  # 3 GiB declared, 3 MB of zeros inside
    size_mb = path.stat().st_size / 2**20
    with pytest.raises(CheckpointError) as e:
        ppir.load_weights(ppir.build_model({"type": "HINet", "wf": 4, "depth": 2}), str(path))
    assert str(e.value) == (f"{path}: the .npz declares arrays of 3072 MB in a file of {size_mb:.1f} MB (over 64x): "
                            f"not weights but a decompression bomb or a damaged file; refused before reading")


def test_real_npz_weights_still_load():
    from conftest import golden_file

    from ppir.convert.formats import read_weights_file

    assert len(read_weights_file(golden_file("hinet_wf8_perturbed.npz")).state) > 100


# ---------------------------------------------------------------------------------------- case 10: YAML configs
def billion_laughs(levels: int) -> str:
    lines = ["model: {type: HINet, wf: 4, depth: 2}", "train:", '  x0: &x0 ["lol","lol","lol","lol","lol","lol",'
             '"lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"  x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 9) + "]")
    lines.append(f"  iters: *x{levels - 1}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [9, 10])
def test_a_billion_laughs_config_is_refused_at_once(tmp_path, capsys, levels):
    path = tmp_path / "laughs.yml"
    path.write_text(billion_laughs(levels))
    start = time.perf_counter()
    code, err = tool(capsys, "train", "-c", path)
    assert time.perf_counter() - start < 10
    assert code == 2
    assert one_error(err) == (f"error: {path}: the config expands to more than 100000 values (YAML aliases of "
                              f"aliases?); refused")


def test_an_override_value_is_bounded_too():
    value = "&a0 [" + ",".join(["1"] * 10) + "]"
    for i in range(1, 6):  # 10^6 values in a few hundred characters
        value = f"&a{i} [" + ",".join([value] + [f"*a{i - 1}"] * 9) + "]"
    with pytest.raises(ConfigError, match=r"^<dict> with -o model.wf: the config expands to more than 100000 values"):
        ppir.load_config({"model": {"type": "HINet"}}, [f"model.wf={value}"])


def test_a_huge_value_is_quoted_short_in_the_message(tmp_path, capsys):
    path = tmp_path / "long.yml"
    path.write_text("model: {type: HINet, wf: [" + ",".join(["12345678"] * 10000) + "]}\n")
    code, err = tool(capsys, "train", "-c", path)
    line = one_error(err)
    assert code == 2 and len(line) < 300
    assert line.startswith(f"error: {path}: model.wf must be int (like the default 64), got list [12345678, ")


# ----------------------------------------------------------------------------------------- case 11: model sizes
def test_model_info_refuses_an_absurd_width_with_the_figure(capsys):
    code, err = tool(capsys, "model_info", "-c", os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml"),
                     "-o", "model.wf=100000")
    assert code == 2
    assert one_error(err) == (
        f"error: {os.path.join(REPO, 'configs', 'hinet_sidd_0.5x.yml')}: model: HINet with {{'depth': 5, "
        f"'hin_position_left': 0, 'hin_position_right': 4, 'in_chn': 3, 'relu_slope': 0.2, 'wf': 100000}} would "
        f"have 216,390,056,800,006 parameters (806,115.8 GB of float32 weights), over the limit of 250,000,000; "
        f"check its size arguments")


def test_train_refuses_an_absurd_depth_before_allocating(tmp_path, capsys):
    from test_train_export import tiny_config

    code, err = tool(capsys, "train", "-c", tiny_config(tmp_path), "-o", "model.depth=40")
    line = one_error(err)
    assert code == 2 and "model: HINet cannot be built with" in line and "'depth': 40" in line
    assert "exceeds int32 range" in line
    assert not (tmp_path / "run").exists()


def test_an_absurd_size_just_over_the_limit_names_the_count(monkeypatch):
    from ppir.models import size_limit

    monkeypatch.setattr(size_limit, "MAX_PARAMETERS", 1000)
    with pytest.raises(ConfigError, match=r"would have 5,[0-9]{3} parameters \(0\.0 GB of float32 weights\), over "
                                          r"the limit of 1,000"):
        size_limit.check_model_size({"type": "HINet", "wf": 4, "depth": 2}, "<dict>", limit=1000)

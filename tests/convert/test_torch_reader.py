"""The safe torch.save / .pdparams readers: round trips, refusal of code, and clean errors on damaged files.

Needs neither PyTorch nor network: the checkpoints are written by a small standard-library writer (tests/torch_format.py) that
lays files out exactly as torch.save does (checked against torch.load in development, see the PR notes).
"""
import collections
import io
import os
import pickle
import random
import subprocess
import tarfile
import zipfile

import numpy as np
import pytest

from ppir.convert import read_paddle_pdparams, read_paddle_pickle, read_torch_checkpoint
from ppir.errors import CheckpointError

from torch_format import BF16, TorchPickleWriter, View, write_torch_legacy, write_torch_zip


# ----------------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ----------------------------------------------------------------------------------------------------------------

def sample_state():
    rng = np.random.default_rng(0)
    sd = collections.OrderedDict()
    sd["conv.weight"] = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    sd["conv.bias"] = rng.standard_normal(8).astype(np.float32)
    sd["norm.running_mean"] = rng.standard_normal(8).astype(np.float32)
    sd["norm.num_batches_tracked"] = np.array(12345678901, dtype=np.int64)
    sd["half"] = rng.standard_normal((2, 5)).astype(np.float16)
    sd["double"] = rng.standard_normal((3,)).astype(np.float64)
    sd["ints"] = np.arange(-3, 3, dtype=np.int64)
    sd["i32"] = np.arange(4, dtype=np.int32)
    sd["u8"] = np.arange(250, 256, dtype=np.uint8)
    sd["mask"] = np.array([True, False, True])
    sd["empty"] = np.zeros((0, 4), dtype=np.float32)
    sd["scalar"] = np.array(2.5, dtype=np.float32)
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("conv", {"version": 1})])
    return sd


def assert_same(got, want):
    """Bit-identical arrays and the same container structure and types."""
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == np.ascontiguousarray(want).tobytes()
        return
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert_same(a, b)
    else:
        assert got == want


def expect_error(fn, path, *fragments):
    with pytest.raises(CheckpointError) as info:
        fn(path)
    msg = str(info.value)
    assert "\n" not in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


# ----------------------------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_round_trip_state_dict(tmp_path, fmt):
    sd = sample_state()
    path = str(tmp_path / "m.pth")
    (write_torch_zip if fmt == "zip" else write_torch_legacy)(path, sd)
    got = read_torch_checkpoint(path)
    assert_same(got, sd)
    for v in got.values():
        assert v.flags.c_contiguous and v.flags.writeable
    assert got._metadata == sd._metadata


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_nested_wrappers_preserved(tmp_path, fmt):
    sd = sample_state()
    module_sd = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    obj = {"params": sd, "state_dict": module_sd, "epoch": 300, "best_psnr": 39.5, "arch": "HINet",
           "history": [1, 2.0, (3, "x"), None, True], "big": 2 ** 40, "neg": -7}
    path = str(tmp_path / "ck.pkl")
    (write_torch_zip if fmt == "zip" else write_torch_legacy)(path, obj)
    assert_same(read_torch_checkpoint(path), obj)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_non_contiguous_and_shared_views(tmp_path, fmt):
    base = np.arange(35, dtype=np.float32).reshape(5, 7)
    obj = {
        "transposed": View(base, 0, (7, 5), (1, 7)),        # base.T
        "strided": View(base, 7, (3, 4), (7, 2)),           # base[1:4, ::2]
        "row": View(base, 14, (7,), (1,)),                  # base[2]
        "expanded": View(base, 3, (4, 2), (0, 1)),          # base.ravel()[3:5] expanded along a new axis
        "whole": base,
    }
    path = str(tmp_path / "v.pth")
    (write_torch_zip if fmt == "zip" else write_torch_legacy)(path, obj)
    got = read_torch_checkpoint(path)
    assert_same(got["transposed"], base.T.copy())
    assert_same(got["strided"], base[1:4, ::2].copy())
    assert_same(got["row"], base[2].copy())
    assert_same(got["expanded"], np.broadcast_to(base.ravel()[3:5], (4, 2)).copy())
    assert_same(got["whole"], base)
    assert all(v.flags.c_contiguous and v.flags.owndata for v in got.values())


def test_bfloat16_widened_exactly(tmp_path):
    f32 = np.array([1.0, -2.5, 3.14159, 1e-30, np.inf, -0.0], dtype=np.float32)
    bits = (f32.view(np.uint32) >> 16).astype(np.uint16)
    path = write_torch_zip(str(tmp_path / "b.pth"), {"w": BF16(bits.reshape(2, 3))})
    got = read_torch_checkpoint(path)["w"]
    assert got.dtype == np.float32 and got.shape == (2, 3)
    assert np.array_equal(got.ravel().view(np.uint32), bits.astype(np.uint32) << 16)


def test_zip_prefix_is_free_and_big_endian_honoured(tmp_path):
    sd = sample_state()
    path = write_torch_zip(str(tmp_path / "x.pth"), sd, prefix="HINet-SIDD-1x", byteorder="big")
    got = read_torch_checkpoint(path)
    assert_same(got, sd)
    assert all(v.dtype.isnative for v in got.values())


def test_storage_read_once_per_key(tmp_path, monkeypatch):
    base = np.arange(12, dtype=np.float32)
    obj = {"a": View(base, 0, (3, 4), (4, 1)), "b": View(base, 2, (5,), (2,)), "c": base}
    path = write_torch_zip(str(tmp_path / "s.pth"), obj)
    opened = []
    real_open = zipfile.ZipFile.open

    def counting_open(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting_open)
    got = read_torch_checkpoint(path)
    assert [n for n in opened if "/data/" in n] == ["archive/data/0"]
    assert_same(got["b"], base[2:12:2].copy())


# ----------------------------------------------------------------------------------------------------------------
# Hostile files: code must never run
# ----------------------------------------------------------------------------------------------------------------

class _RunsCommand:
    def __init__(self, marker, how="system"):
        self.marker, self.how = marker, how

    def __reduce__(self):
        cmd = f"touch {self.marker}"
        if self.how == "system":
            return os.system, (cmd,)
        if self.how == "eval":
            return eval, (f"__import__('os').system({cmd!r})",)
        if self.how == "popen":
            return subprocess.Popen, (["touch", self.marker],)
        raise ValueError(self.how)


HOW = ["system", "eval", "popen"]


def _evil_bytes(marker, how, protocol=2):
    return pickle.dumps({"weight": _RunsCommand(marker, how)}, protocol=protocol)


@pytest.mark.parametrize("how", HOW)
def test_hostile_zip_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    path = str(tmp_path / "evil.pth")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", _evil_bytes(marker, how))
        z.writestr("archive/version", "3\n")
        z.writestr("archive/byteorder", "little")
    expect_error(read_torch_checkpoint, path, "refused", path)
    assert not marker.exists()


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_hostile_raw_pickle_refused(tmp_path, how, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_evil_bytes(marker, how, protocol))
    for reader in (read_torch_checkpoint, read_paddle_pdparams):
        expect_error(reader, str(path), "refused")
    assert not marker.exists()


@pytest.mark.parametrize("how", HOW)
def test_hostile_legacy_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    path = write_torch_legacy(str(tmp_path / "evil.pth"), {}, main_pickle=_evil_bytes(marker, how))
    expect_error(read_torch_checkpoint, path, "refused")
    assert not marker.exists()


def test_refusal_message_names_the_global(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(_evil_bytes(tmp_path / "m", "eval", protocol=4))
    msg = expect_error(read_torch_checkpoint, str(path), "refused", "'builtins.eval'", str(path))
    assert "never runs code" in msg


def test_hostile_global_next_to_real_tensors(tmp_path):
    """A file that is a valid checkpoint except for one entry is still refused as a whole."""
    marker = tmp_path / "pwned"
    w = TorchPickleWriter()
    good = w.dumps({"w": np.ones(3, np.float32)})
    evil = pickle.dumps(_RunsCommand(marker), protocol=2)
    # splice: {'w': tensor, 'x': <os.system call>}
    spliced = good[:-2] + b"X\x01\x00\x00\x00x" + evil[2:-1] + b"u."
    path = str(tmp_path / "mixed.pth")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", spliced)
        z.writestr("archive/data/0", np.ones(3, np.float32).tobytes())
    expect_error(read_torch_checkpoint, path, "refused")
    assert not marker.exists()


def test_paddle_globals_not_allowed_in_torch_files(tmp_path):
    path = tmp_path / "codecs.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"b": b"\x00\x01"}, protocol=2))  # _codecs.encode
    expect_error(read_torch_checkpoint, str(path), "refused", "'_codecs.encode'")


def test_build_on_foreign_objects_refused(tmp_path):
    # OrderedDict() then BUILD with a (state, slotstate) pair: slot state means setattr, never allowed
    data = b"\x80\x02ccollections\nOrderedDict\n)R(}}X\x09\x00\x00\x00__class__N" + b"stb."
    path = tmp_path / "build.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
    expect_error(read_torch_checkpoint, str(path), "refused")


def test_whole_model_pickle_refused(tmp_path):
    data = b"\x80\x02c__main__\nNet\n)\x81."  # torch.save(model): the class by reference, then NEWOBJ
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
    expect_error(read_torch_checkpoint, str(path), "refused", "'__main__.Net'")


# ----------------------------------------------------------------------------------------------------------------
# Damaged and foreign files: always a CheckpointError, never another exception
# ----------------------------------------------------------------------------------------------------------------

def test_missing_and_empty_files(tmp_path):
    expect_error(read_torch_checkpoint, str(tmp_path / "nope.pth"), "no such file")
    expect_error(read_paddle_pdparams, str(tmp_path / "nope.pdparams"), "no such file")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    expect_error(read_torch_checkpoint, str(empty), "empty")
    expect_error(read_paddle_pdparams, str(empty), "empty")
    expect_error(read_torch_checkpoint, str(tmp_path), "directory")


def test_truncated_zip(tmp_path):
    path = write_torch_zip(str(tmp_path / "m.pth"), sample_state())
    data = open(path, "rb").read()
    cut = tmp_path / "half.pth"
    cut.write_bytes(data[: len(data) // 2])
    expect_error(read_torch_checkpoint, str(cut), str(cut), "zip")


def test_text_and_random_files(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    expect_error(read_torch_checkpoint, str(text), "not a PyTorch checkpoint")
    expect_error(read_paddle_pdparams, str(text), "not a Paddle")
    rng = random.Random(1234)
    for i in range(40):
        junk = tmp_path / f"junk{i}.bin"
        head = b"\x80\x02" if i % 2 else b""
        junk.write_bytes(head + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
        expect_error(read_torch_checkpoint, str(junk))
        expect_error(read_paddle_pdparams, str(junk))


def test_old_tar_format(tmp_path):
    path = tmp_path / "old.pth"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for name in ("sys_info", "pickle", "storages", "tensors"):
            info = tarfile.TarInfo(name)
            info.size = 4
            t.addfile(info, io.BytesIO(b"\x80\x02N."))
    expect_error(read_torch_checkpoint, str(path), "tar")


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_storage_shorter_than_declared(tmp_path, fmt):
    path = str(tmp_path / "short.pth")
    write = write_torch_zip if fmt == "zip" else write_torch_legacy
    write(path, {"w": np.ones((4, 4), np.float32)}, storage_hook=lambda key, raw: raw[:20])
    expect_error(read_torch_checkpoint, path, path)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_huge_declared_size(tmp_path, fmt):
    path = str(tmp_path / "huge.pth")
    write = write_torch_zip if fmt == "zip" else write_torch_legacy
    write(path, {"w": np.ones(4, np.float32)}, numel_override={"0": 2 ** 60})
    expect_error(read_torch_checkpoint, path, "declares")


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("view", [
    View(np.ones(10, np.float32), 8, (3,), (1,)),               # runs off the end
    View(np.ones(10, np.float32), 0, (4, 4), (4, 1)),           # 16 elements of 10
    View(np.ones(10, np.float32), 0, (2 ** 40, 2 ** 40), (0, 0)),  # absurd expansion of one element
    View(np.ones(10, np.float32), -1, (2,), (1,)),              # negative offset
    View(np.ones(10, np.float32), 0, (2,), (-1,)),              # negative stride
    View(np.ones(10, np.float32), 0, (2, 2), (1,)),             # size/stride mismatch
])
def test_tensor_outside_its_storage(tmp_path, fmt, view):
    path = str(tmp_path / "oob.pth")
    (write_torch_zip if fmt == "zip" else write_torch_legacy)(path, {"w": view})
    expect_error(read_torch_checkpoint, path, path)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_every_truncation_and_corruption_is_a_checkpoint_error(tmp_path, fmt):
    path = str(tmp_path / "m.pth")
    obj = {"params": sample_state(), "epoch": 3}
    (write_torch_zip if fmt == "zip" else write_torch_legacy)(path, obj)
    data = open(path, "rb").read()
    bad = tmp_path / "bad.pth"
    for cut in list(range(1, len(data), max(1, len(data) // 150))):
        bad.write_bytes(data[:cut])
        expect_error(read_torch_checkpoint, str(bad))
    rng = random.Random(7)
    for _ in range(150):
        b = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        bad.write_bytes(bytes(b))
        try:
            read_torch_checkpoint(str(bad))  # a flip inside tensor data may still load
        except CheckpointError as e:
            assert "\n" not in str(e)


# ----------------------------------------------------------------------------------------------------------------
# Paddle .pdparams (needs paddle, which ppir depends on anyway)
# ----------------------------------------------------------------------------------------------------------------

def _paddle_layer():
    paddle = pytest.importorskip("paddle")
    paddle.seed(0)
    layer = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.PReLU(),
                                 paddle.nn.Conv2DTranspose(4, 2, 2, stride=2))
    return paddle, layer


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_pdparams_round_trip(tmp_path, protocol):
    paddle, layer = _paddle_layer()
    sd = layer.state_dict()
    sd["extra_half"] = paddle.to_tensor(np.arange(6, dtype=np.float16).reshape(2, 3))
    sd["extra_long"] = paddle.to_tensor(np.array([2 ** 40, -1], dtype=np.int64))
    want = {k: v.numpy() for k, v in sd.items()}
    path = str(tmp_path / "m.pdparams")
    paddle.save(sd, path, protocol=protocol)
    got = read_paddle_pdparams(path)
    assert list(got) == list(want)  # 'StructuredToParameterName@@' dropped
    for k in want:
        assert_same(got[k], want[k])


@pytest.mark.parametrize("protocol", [2, 4])
def test_pdparams_nested_wrapper(tmp_path, protocol):
    paddle, layer = _paddle_layer()
    want = {k: v.numpy() for k, v in layer.state_dict().items()}
    path = str(tmp_path / "ck.pdparams")
    paddle.save({"model": layer.state_dict(), "epoch": 3}, path, protocol=protocol)
    raw = read_paddle_pickle(path)
    assert raw["epoch"] == 3 and isinstance(raw["model"][next(iter(want))], tuple)  # (name, array) pairs
    got = read_paddle_pdparams(path)
    assert list(got) == ["model"]
    assert list(got["model"]) == list(want)
    for k in want:
        assert_same(got["model"][k], want[k])


def test_pdparams_split_big_params_are_joined(tmp_path):
    """paddle.save with protocol 2/3 splits arrays over 1 GiB; the same layout, in small, is joined again."""
    paddle = pytest.importorskip("paddle")
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    flat = w.ravel()
    saved = {"b": np.ones(2, np.float32), "w@@.0": flat[:10], "w@@.1": flat[10:20], "w@@.2": flat[20:],
             "StructuredToParameterName@@": {"w": "w_0", "b": "b_0"},
             "UnpackBigParamInfor@@": {"w": {"OriginShape": w.shape, "slices": ["w@@.0", "w@@.1", "w@@.2"]}}}
    path = str(tmp_path / "split.pdparams")
    with open(path, "wb") as f:
        pickle.dump(saved, f, protocol=2)
    got = read_paddle_pdparams(path)
    assert sorted(got) == ["b", "w"]
    assert_same(got["w"], w)
    ref = paddle.load(path, return_numpy=True)  # paddle itself reads the synthetic layout the same way
    assert_same(ref["w"], w)


@pytest.mark.parametrize("how", HOW)
def test_hostile_pdparams_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    good = {"w": np.ones(3, np.float32)}
    path.write_bytes(pickle.dumps({**good, "x": _RunsCommand(marker, how)}, protocol=4))
    expect_error(read_paddle_pdparams, str(path), "refused")
    assert not marker.exists()


def test_pdparams_object_arrays_refused(tmp_path):
    path = tmp_path / "obj.pdparams"
    path.write_bytes(pickle.dumps({"w": np.array([1, "a"], dtype=object)}, protocol=4))
    expect_error(read_paddle_pdparams, str(path), "refused")


def test_pdparams_damaged(tmp_path):
    paddle, layer = _paddle_layer()
    path = str(tmp_path / "m.pdparams")
    paddle.save(layer.state_dict(), path)
    data = open(path, "rb").read()
    bad = tmp_path / "bad.pdparams"
    for cut in range(1, len(data), max(1, len(data) // 100)):
        bad.write_bytes(data[:cut])
        expect_error(read_paddle_pdparams, str(bad))
    torch_file = write_torch_zip(str(tmp_path / "t.pth"), {"w": np.ones(2, np.float32)})
    expect_error(read_paddle_pdparams, torch_file, "zip")


# ----------------------------------------------------------------------------------------------------------------
# The format sniff (ppir/convert/sniff.py): what load_weights says for each file no reader handles, and each
# reader's "wrong format" messages
# ----------------------------------------------------------------------------------------------------------------

def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return str(path)


def test_load_weights_names_each_foreign_format(tmp_path):
    from ppir.convert import read_weights_file
    tar = tmp_path / "old.pth"
    with tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("pickle")
        info.size = 4
        t.addfile(info, io.BytesIO(b"\x80\x02N."))
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    safetensors = tmp_path / "m.safetensors"
    safetensors.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    pkl = pickle.dumps({}, protocol=2)
    cases = {
        str(tar): "early tar-based torch.save format",
        str(safetensors): "safetensors",
        _zip(tmp_path / "deep.pth", {"a/b/data.pkl": pkl}): "zip archive without data.pkl",
        _zip(tmp_path / "two.pth", {"a/data.pkl": pkl, "b/data.pkl": pkl}): "several data.pkl records",
        _zip(tmp_path / "jit.pt", {"m/data.pkl": pkl, "m/constants.pkl": pkl}): "TorchScript archive",
        _zip(tmp_path / "other.zip", {"readme.txt": "hi"}): "neither a torch checkpoint nor an .npz",
    }
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    cases[str(notes)] = "not a weights file ppir can read"
    for path, fragment in cases.items():
        expect_error(read_weights_file, path, path, fragment)


def test_each_reader_names_the_format_it_was_given(tmp_path):
    paddle, layer = _paddle_layer()
    pdparams = str(tmp_path / "m.pdparams")
    paddle.save(layer.state_dict(), pdparams)
    expect_error(read_torch_checkpoint, pdparams, "a Paddle .pdparams?")
    number = tmp_path / "five.pkl"
    number.write_bytes(pickle.dumps(5, protocol=2))
    expect_error(read_torch_checkpoint, str(number), "no torch.save magic number")
    npz = str(tmp_path / "a.npz")
    np.savez(npz, w=np.ones(2))
    expect_error(read_torch_checkpoint, npz, "numpy .npz archive")
    legacy = write_torch_legacy(str(tmp_path / "old.pth"), {"w": np.ones(2, np.float32)})
    expect_error(read_paddle_pdparams, legacy, "legacy PyTorch checkpoint")
    listed = tmp_path / "list.pdparams"
    listed.write_bytes(pickle.dumps([1, 2], protocol=4))
    expect_error(read_paddle_pdparams, str(listed), "holding a list, not a dict of parameters")

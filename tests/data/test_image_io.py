import cv2
import numpy as np
import pytest

from ppir.data.image_io import read_image, write_image
from ppir.errors import ImageError
from ppir.infer.pipeline import pad_to_multiple, padded_size


def test_gray_rgba_and_16bit_become_rgb_float(tmp_path):
    gray = (np.arange(12 * 10) % 256).astype(np.uint8).reshape(12, 10)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    g = read_image(str(tmp_path / "g.png"))
    assert g.shape == (12, 10, 3) and g.dtype == np.float32
    np.testing.assert_allclose(g[..., 0], gray / 255.0, atol=1e-7)

    bgra = np.zeros((5, 6, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 10, 200, 7  # blue 10, red 200, alpha 7
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    a = read_image(str(tmp_path / "a.png"))
    assert a.shape == (5, 6, 3)
    np.testing.assert_allclose(a[0, 0], [200 / 255, 0, 10 / 255], atol=1e-7)

    deep = np.full((4, 4, 3), 65535, np.uint16)
    deep[..., 1] = 32768
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    d = read_image(str(tmp_path / "d.png"))
    np.testing.assert_allclose(d[0, 0], [1.0, 32768 / 65535, 1.0], atol=1e-6)


def test_unreadable_images_name_the_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(ImageError, match="x.png: not a readable image"):
        read_image(str(tmp_path / "x.png"))
    with pytest.raises(ImageError, match="missing.png: no such image file"):
        read_image(str(tmp_path / "missing.png"))


def test_write_is_atomic_and_roundtrips(tmp_path):
    img = np.random.RandomState(0).rand(7, 9, 3).astype(np.float32)
    write_image(str(tmp_path / "o.png"), img)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]
    back = read_image(str(tmp_path / "o.png"))
    assert np.abs(back - img).max() <= 0.5 / 255 + 1e-6


def test_padding_reaches_multiple_and_minimum():
    assert padded_size(300, 16) == 304 and padded_size(20, 16, min_size=32) == 32
    x = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    y = pad_to_multiple(x, 4)
    assert y.shape == (2, 8, 8)
    np.testing.assert_array_equal(y[:, :5, :7], x)
    np.testing.assert_array_equal(y[:, 5, :7], x[:, 3])  # reflection, not repetition
    assert pad_to_multiple(np.ones((3, 1, 1)), 16, 32).shape == (3, 32, 32)


def test_written_files_get_the_umask_mode(tmp_path):
    """Like a plain open(): 0666 & ~umask (the old mkstemp scheme always gave 0600)."""
    import os

    import ppir

    old = os.umask(0o022)
    try:
        write_image(str(tmp_path / "o.png"), np.zeros((3, 4, 3), np.float32))
        ppir.save_weights({"w": np.ones(2, np.float32)}, str(tmp_path / "w.pdparams"))
        os.umask(0o027)
        write_image(str(tmp_path / "g.png"), np.zeros((3, 4, 3), np.float32))
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "o.png").st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(tmp_path / "w.pdparams").st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(tmp_path / "g.png").st_mode & 0o777) == oct(0o640)


def test_a_killed_write_leaves_a_temp_that_the_next_run_sweeps(tmp_path):
    """A writer killed mid-write (os._exit before the rename) leaves its temporary; the sweep removes it, and
    only it: a user's look-alike files and a temporary of a live process stay."""
    import os
    import subprocess
    import sys

    from ppir.paths import sweep_stale_temps

    from conftest import REPO

    code = ("import os, sys, numpy as np; sys.path.insert(0, sys.argv[1]); import ppir.data.image_io as io; "
            "os.replace = lambda *a: os._exit(9); io.write_image(sys.argv[2], np.zeros((2, 2, 3)))")
    r = subprocess.run([sys.executable, "-c", code, REPO, str(tmp_path / "o.png")], capture_output=True)
    assert r.returncode == 9
    left = [n for n in os.listdir(tmp_path)]
    assert len(left) == 1 and left[0].startswith(".o.png.ppir-") and left[0].endswith(".tmp")
    look_alikes = [".o.png.ppir-notapid-0123abcd.tmp", "o.png.ppir-123-0123abcd.tmp", ".tmp-x.png",
                   f".o.png.ppir-{os.getppid()}-0123abcd.tmp"]  # the last: a live process's temporary
    for name in look_alikes:
        (tmp_path / name).write_bytes(b"keep me")
    assert sweep_stale_temps(str(tmp_path)) == [str(tmp_path / left[0])]
    assert sorted(os.listdir(tmp_path)) == sorted(look_alikes)

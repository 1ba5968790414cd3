"""Issue 25, wrong output and tracebacks (cases 13, 14, 15): arrays given to the Python API, a PNG with a large
legal text chunk, make-synthetic-data / quant-report / client mistakes as one line, JPEG EXIF orientation."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from bad_input_checks import one_error
from conftest import tiny_hinet
from test_train_export import tool

from ppir.data.image_io import decode_image  # noqa: E402
from ppir.errors import ImageError  # noqa: E402


# --------------------------------------------------------------------------- case 13: arrays to the Python API
@pytest.fixture(scope="module")
def restorer():
    from ppir.infer.restorer import ImageRestorer

    return ImageRestorer.for_model(tiny_hinet(), backend="dygraph")


@pytest.mark.parametrize("value, count", [(np.nan, 3), (np.inf, 3), (-np.inf, 1)])
def test_nan_or_inf_in_an_array_is_refused_not_restored_black(restorer, value, count):
    img = np.full((32, 32, 3), 0.5, np.float32)
    img.reshape(-1)[:count] = value
    for call in (restorer, restorer.restore):
        with pytest.raises(ImageError) as e:
            call(img)
        assert str(e.value) == (f"the image: {count} of 3072 values are NaN or infinite; an image holds finite "
                                f"values in [0, 1]")


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 32, 3), (32, 0), (0,)])
def test_an_empty_array_is_refused_in_one_line(restorer, shape):
    with pytest.raises(ImageError, match=r"the image: (the image is empty|expected an H x W x 3)"):
        restorer(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape", [(32,), (2, 32, 32, 3), (32, 32, 2)])
def test_an_array_that_is_no_image_names_its_shape(restorer, shape):
    with pytest.raises(ImageError) as e:
        restorer(np.zeros(shape, np.float32))
    assert str(e.value) == (f"the image: expected an H x W x 3 RGB array (or H x W gray, H x W x 4 RGBA), got "
                            f"shape {shape}")


def test_a_2d_array_is_restored_as_a_gray_image(restorer):
    gray = np.random.default_rng(0).random((32, 48), dtype=np.float32)
    out = restorer(gray)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert np.array_equal(out, restorer(np.stack([gray] * 3, axis=-1)))
    assert np.array_equal(restorer(gray[:, :, None]), out)


def test_uint8_arrays_are_scaled(restorer):
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), np.uint8)
    assert np.array_equal(restorer(img), restorer(img.astype(np.float32) / 255))


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.mark.parametrize("kind", [b"iTXt", b"tEXt"])
def test_a_png_with_a_large_legal_text_chunk_is_read(kind):
    img = np.random.default_rng(2).integers(0, 256, (16, 24, 3), np.uint8)
    png = cv2.imencode(".png", img)[1].tobytes()
    text = b"Comment\x00" + (b"\x00\x00\x00\x00" if kind == b"iTXt" else b"") + b"x" * (9 << 20)
    data = png[:33] + _chunk(kind, text) + png[33:]  # after IHDR, as writers place metadata
    out = decode_image(data, "big_comment.png")
    assert np.array_equal(np.rint(out * 255).astype(np.uint8), img[:, :, ::-1])


def test_a_truly_corrupt_png_is_still_called_unreadable():
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    with pytest.raises(ImageError, match="bad.png: not a readable image"):
        decode_image(png[:40] + b"\x00" * 20, "bad.png")


# --------------------------------------------------------------------------------------- case 14: one-liners
def test_make_synthetic_data_out_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    code, err = tool(capsys, "make_synthetic_data", "--degradation", "gaussian_noise", "--out", blocker)
    assert code == 2 and one_error(err) == f"error: --out: {blocker} is a file, not a folder"
    assert blocker.read_text() == "keep me"


def test_make_synthetic_data_out_in_proc(capsys):
    code, err = tool(capsys, "make_synthetic_data", "--degradation", "gaussian_noise", "--out", "/proc/ppir_x",
                     "--num", "1", "--size", "16x16")
    assert code == 2
    assert one_error(err) == "error: --out /proc/ppir_x: cannot write: No such file or directory: /proc/ppir_x"


def test_make_synthetic_data_absurd_size(tmp_path, capsys):
    code, err = tool(capsys, "make_synthetic_data", "--degradation", "gaussian_noise", "--out", tmp_path / "o",
                     "--size", "100000x100000")
    assert code == 2
    assert one_error(err) == ("error: SyntheticDataset: size 100000x100000 is 10,000,000,000 pixels per image, more "
                              "than the 16,777,216 (4096x4096) a synthetic sample may have")
    assert not (tmp_path / "o").exists()


def test_quant_report_output_a_folder_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    import ppir.quant

    monkeypatch.setattr(ppir.quant, "run_report", lambda *a, **k: pytest.fail("the report ran"))
    data = tmp_path / "data"
    (data / "lq").mkdir(parents=True)
    (data / "gt").mkdir()
    cv2.imwrite(str(data / "lq" / "a.png"), np.zeros((16, 16, 3), np.uint8))
    code, err = tool(capsys, "quant_report", "--model_dir", tmp_path, "--dataset", data, "--output", tmp_path)
    assert code == 2 and one_error(err) == f"error: --output: {tmp_path} is a folder, not a file"


@pytest.mark.parametrize("url, why", [
    ("notaurl", "not an http(s) URL with a host"),
    ("http://[::1", "not a valid URL (Invalid IPv6 URL)"),
    ("http://127.0.0.1:port", "not a valid URL (Port could not be cast to integer value as 'port')"),
])
def test_client_bad_url_is_one_line(tmp_path, capsys, url, why):
    from ppir.commands import client

    image = tmp_path / "a.png"
    image.write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    code = client.main(["--url", url, "--image", str(image), "--output", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and one_error(err) == f"error: --url {url!r}: {why}; e.g. http://127.0.0.1:8080"
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------------- case 15: EXIF orientation
def jpeg_with_orientation(jpg: bytes, orientation: int, endian: str = "<") -> bytes:
    """`jpg` with an APP1 Exif segment whose IFD0 holds only the Orientation tag."""
    order = b"II" if endian == "<" else b"MM"
    tiff = (order + struct.pack(endian + "HI", 42, 8) + struct.pack(endian + "H", 1)
            + struct.pack(endian + "HHI", 0x0112, 3, 1) + struct.pack(endian + "HH", orientation, 0)
            + struct.pack(endian + "I", 0))
    body = b"Exif\x00\x00" + tiff
    return jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpg[2:]


@pytest.fixture(scope="module")
def asymmetric_jpeg():
    img = np.zeros((24, 40, 3), np.uint8)
    img[:8, :10] = (0, 0, 255)  # a red corner top left, blue bottom right, a gray column: every turn differs
    img[16:, 30:] = (255, 0, 0)
    img[:, 20] = 128
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_viewers_show_the_jpeg(asymmetric_jpeg, orientation, endian):
    """OpenCV's IMREAD_COLOR applies the tag as viewers do: the reference for all 8 values, both byte orders."""
    data = jpeg_with_orientation(asymmetric_jpeg, orientation, endian)
    viewer = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    got = decode_image(data)
    assert got.shape == viewer.shape
    assert np.array_equal(np.rint(got * 255).astype(np.uint8), viewer)


def test_predict_writes_a_rotated_jpeg_upright(asymmetric_jpeg, tmp_path, capsys):
    from conftest import REPO, golden_file

    src = tmp_path / "in"
    src.mkdir()
    (src / "phone.jpg").write_bytes(jpeg_with_orientation(asymmetric_jpeg, 6))  # stored 24x40, shown 40x24
    code, err = tool(capsys, "predict", "-c", f"{REPO}/configs/hinet_sidd_0.5x.yml", "-o", "model.wf=8",
                     "--weights", golden_file("hinet_wf8_perturbed.npz"), "--input", src, "--output", tmp_path / "out",
                     "--backend", "dygraph")
    assert code == 0, err
    out = cv2.imread(str(tmp_path / "out" / "phone.png"), cv2.IMREAD_COLOR)
    assert out.shape == (40, 24, 3)  # upright, as a viewer shows the input
    assert out[:8, -10:, 2].mean() > 150 and out[:8, :10, 2].mean() < 100  # the red corner turned to the top right

"""Datasets, layouts, augmentations, SIDD .mat reading, synthetic degradations and the data CLI."""
import os
import warnings

import cv2
import numpy as np
import pytest

from conftest import run_tool

from ppir.data import (GoProDataset, PairedFolderDataset, Rain13kDataset, REDSDataset, SIDDDataset,
                       SIDDValDataset, SyntheticDataset)
from ppir.data.transforms import dihedral, dihedral_inverse, mixup, paired_random_augment
from ppir.errors import ConfigError, DatasetError, ImageError
from ppir.registry import DATASETS


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def write_png(path, seed, h=24, w=32, offset=0):
    """A random RGB image; lq files get `offset` added so lq - gt is a known constant."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 200, (h, w, 3)).astype(np.uint8) + np.uint8(offset)
    ext = os.path.splitext(path)[1]
    cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 100] if ext == ".jpg" else [])
    return img


def make_pairs(lq_dir, gt_dir, names, h=24, w=32, lq_ext=".png"):
    for i, n in enumerate(names):
        write_png(os.path.join(gt_dir, n + ".png"), i, h, w)
        write_png(os.path.join(lq_dir, n + lq_ext), i, h, w, offset=10)


@pytest.fixture
def folder(tmp_path):
    make_pairs(str(tmp_path / "lq"), str(tmp_path / "gt"), ["b", "a", "c"])
    return str(tmp_path / "lq"), str(tmp_path / "gt")


# ------------------------------------------------------------------------------------------ contract, pairing
def test_all_datasets_registered():
    for name in ("PairedFolderDataset", "SIDDDataset", "GoProDataset", "Rain13kDataset", "REDSDataset",
                 "SIDDValDataset", "SyntheticDataset"):
        assert name in DATASETS


def test_paired_folder_contract(folder):
    ds = PairedFolderDataset(lq_dir=folder[0], gt_dir=folder[1])
    assert len(ds) == 3 and [ds[i]["name"] for i in range(3)] == ["a", "b", "c"]
    s = ds[0]
    assert set(s) == {"lq", "gt", "name"}
    assert s["lq"].shape == s["gt"].shape == (3, 24, 32) and s["lq"].dtype == np.float32
    assert 0 <= s["gt"].min() and s["lq"].max() <= 1
    np.testing.assert_allclose(s["lq"] - s["gt"], 10 / 255, atol=1e-6)  # lq/gt of the same pair
    # RGB order: the file is BGR on disk
    bgr = cv2.imread(os.path.join(folder[1], "a.png"))
    np.testing.assert_allclose(s["gt"][0], bgr[:, :, 2] / 255.0, atol=1e-6)
    assert ds[-1]["name"] == "c"
    with pytest.raises(IndexError):
        ds[3]


def test_pairing_by_stem_and_unmatched(tmp_path):
    make_pairs(str(tmp_path / "lq"), str(tmp_path / "gt"), ["x1", "x2"], lq_ext=".jpg")
    ds = PairedFolderDataset(lq_dir=str(tmp_path / "lq"), gt_dir=str(tmp_path / "gt"))
    assert [p[0] for p in ds.pairs] == ["x1", "x2"] and ds.pairs[0][1].endswith("x1.jpg")
    write_png(str(tmp_path / "lq" / "only_in_lq.png"), 5)
    write_png(str(tmp_path / "gt" / "only_in_gt.png"), 5)
    with pytest.raises(DatasetError) as e:
        PairedFolderDataset(lq_dir=str(tmp_path / "lq"), gt_dir=str(tmp_path / "gt"))
    msg = str(e.value)
    assert "only_in_lq" in msg and "only_in_gt" in msg and "\n" not in msg
    ds = PairedFolderDataset(lq_dir=str(tmp_path / "lq"), gt_dir=str(tmp_path / "gt"), pair_by="sorted")
    assert len(ds) == 3


# ------------------------------------------------------------------------------------------ layouts
def test_sidd_layouts(tmp_path):
    make_pairs(str(tmp_path / "m" / "input"), str(tmp_path / "m" / "groundtruth"), ["0_0", "0_1"])
    make_pairs(str(tmp_path / "h" / "input_crops"), str(tmp_path / "h" / "gt_crops"), ["s_001", "s_002", "s_003"])
    a = SIDDDataset(root=str(tmp_path / "m"))
    b = SIDDDataset(root=str(tmp_path / "h"))
    assert (a.layout, len(a), b.layout, len(b)) == ("mirnet", 2, "hinet", 3)
    assert len(SIDDDataset(root=str(tmp_path / "h"), layout="hinet")) == 3
    with pytest.raises(DatasetError, match="input_crops"):
        SIDDDataset(root=str(tmp_path / "m"), layout="hinet")
    with pytest.raises(ConfigError):
        SIDDDataset(root=str(tmp_path / "m"), layout="nope")


def test_gopro_layouts(tmp_path):
    orig = tmp_path / "GOPRO_Large"
    for seq in ("GOPR0001_11_00", "GOPR0002_11_01"):
        for f in ("000001", "000002"):
            write_png(str(orig / "train" / seq / "sharp" / f"{f}.png"), 1)
            write_png(str(orig / "train" / seq / "blur" / f"{f}.png"), 1, offset=10)
            write_png(str(orig / "train" / seq / "blur_gamma" / f"{f}.png"), 1, offset=20)
    ds = GoProDataset(root=str(orig), split="train")
    assert ds.layout == "original" and len(ds) == 4 and ds[0]["name"] == "GOPR0001_11_00_000001"
    np.testing.assert_allclose(ds[0]["lq"] - ds[0]["gt"], 10 / 255, atol=1e-6)
    g = GoProDataset(root=str(orig), split="train", blur_dir="blur_gamma")
    np.testing.assert_allclose(g[0]["lq"] - g[0]["gt"], 20 / 255, atol=1e-6)
    make_pairs(str(tmp_path / "GOPRO" / "test" / "blur"), str(tmp_path / "GOPRO" / "test" / "sharp"), ["s_1"])
    assert GoProDataset(root=str(tmp_path / "GOPRO"), split="test").layout == "mimo"
    make_pairs(str(tmp_path / "GoPro" / "test" / "input"), str(tmp_path / "GoPro" / "test" / "target"), ["1", "2"])
    m = GoProDataset(root=str(tmp_path / "GoPro"), split="test")
    assert m.layout == "mprnet" and len(m) == 2
    with pytest.raises(DatasetError, match="GOPRxxxx"):
        GoProDataset(root=str(tmp_path / "GoPro"), split="train")


def test_rain13k_and_reds(tmp_path):
    r = tmp_path / "Rain13k"
    make_pairs(str(r / "train" / "input"), str(r / "train" / "target"), ["1", "2", "3"])
    make_pairs(str(r / "test" / "Rain100H" / "input"), str(r / "test" / "Rain100H" / "target"), ["1"])
    assert len(Rain13kDataset(root=str(r))) == 3
    assert len(Rain13kDataset(root=str(r), split="Rain100H")) == 1
    with pytest.raises(DatasetError, match="Test100"):
        Rain13kDataset(root=str(r), split="Test100")
    with pytest.raises(ConfigError, match="Rain100L"):
        Rain13kDataset(root=str(r), split="rain100h")

    reds = tmp_path / "REDS"
    for seq in ("000", "001"):
        for f in ("00000008", "00000009", "00000019"):
            write_png(str(reds / "val" / "val_sharp" / seq / f"{f}.png"), 2)
            write_png(str(reds / "val" / "val_blur_jpeg" / seq / f"{f}.jpg"), 2)
    ds = REDSDataset(root=str(reds), split="val")
    assert len(ds) == 6 and ds[0]["name"] == "000_00000008"
    v = REDSDataset(root=str(reds), split="val", val_300=True)
    assert [p[0] for p in v.pairs] == ["000_00000009", "000_00000019", "001_00000009", "001_00000019"]


@pytest.mark.parametrize("make, layout, url", [
    (lambda p: PairedFolderDataset(lq_dir=p, gt_dir=p), "folder of images", ""),
    (lambda p: SIDDDataset(root=p), "input,groundtruth", "yorku.ca/~kamel/sidd"),
    (lambda p: GoProDataset(root=p), "blur,sharp", "seungjunnah.github.io/Datasets/gopro"),
    (lambda p: Rain13kDataset(root=p, split="Test2800"), "test/Test2800/{input,target}", "MPRNet"),
    (lambda p: REDSDataset(root=p, split="val"), "val_blur_jpeg", "reds.html"),
    (lambda p: SIDDValDataset(noisy_mat=p, gt_mat=p), "ValidationNoisyBlocksSrgb", "yorku.ca/~kamel/sidd"),
])
def test_missing_path_errors(tmp_path, make, layout, url):
    missing = str(tmp_path / "does_not_exist")
    with pytest.raises(DatasetError) as e:
        make(missing)
    msg = str(e.value)
    assert missing in msg and layout in msg and url in msg and "\n" not in msg


def test_empty_folder_error(tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "groundtruth").mkdir()
    with pytest.raises(DatasetError) as e:
        SIDDDataset(root=str(tmp_path))
    assert str(tmp_path / "input") in str(e.value) and "no image files" in str(e.value)


# ------------------------------------------------------------------------------------------ augmentation
def test_crop_flip_rot_determinism(folder):
    ds = PairedFolderDataset(lq_dir=folder[0], gt_dir=folder[1], patch_size=16, use_flip=True, use_rot=True)
    a = ds.sample(1, np.random.default_rng([7, 3]))
    b = ds.sample(1, np.random.default_rng([7, 3]))
    assert a["lq"].shape == (3, 16, 16)
    np.testing.assert_array_equal(a["lq"], b["lq"])
    np.testing.assert_array_equal(a["gt"], b["gt"])
    others = [ds.sample(1, np.random.default_rng([7, k]))["gt"] for k in range(4, 10)]
    assert any(not np.array_equal(a["gt"], o) for o in others)
    for o in [a] + [ds.sample(1, np.random.default_rng(k)) for k in range(10)]:
        np.testing.assert_allclose(o["lq"] - o["gt"], 10 / 255, atol=1e-6)  # crop/flip keep the pair aligned
    np.testing.assert_array_equal(ds[2]["gt"], ds[2]["gt"])                   # __getitem__ is deterministic
    too_big = PairedFolderDataset(lq_dir=folder[0], gt_dir=folder[1], patch_size=25)
    with pytest.raises(ImageError, match=r"a\.png.*smaller than patch_size 25"):
        too_big.sample(0, np.random.default_rng(0))


def test_dihedral_group():
    img = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    outs = [dihedral(img, m) for m in range(8)]
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    for m in range(8):
        np.testing.assert_array_equal(dihedral_inverse(outs[m], m), img)
        chw = np.transpose(img, (2, 0, 1))
        np.testing.assert_array_equal(dihedral(chw, m, axes=(-2, -1)), np.transpose(outs[m], (2, 0, 1)))
    gt = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    modes = set()
    for k in range(64):
        lq2, gt2, m = paired_random_augment(gt * 0.5, gt, np.random.default_rng(k), True, True)
        np.testing.assert_array_equal(lq2, gt2 * 0.5)
        modes.add(m)
    assert modes == set(range(8))
    assert {paired_random_augment(gt, gt, np.random.default_rng(k), True, False)[2] for k in range(32)} == {0, 4}
    assert {paired_random_augment(gt, gt, np.random.default_rng(k), False, True)[2] for k in range(32)} == {0, 1, 2, 3}


def test_mixup_numpy_and_paddle():
    import paddle

    rng = np.random.default_rng(0)
    gt = rng.random((4, 3, 8, 8)).astype(np.float32)
    lq = 2 * gt + 1
    lq_m, gt_m = mixup(lq, gt, np.random.default_rng(2))
    assert lq_m.shape == lq.shape and gt_m.shape == gt.shape and lq_m.dtype == np.float32
    np.testing.assert_allclose(lq_m, 2 * gt_m + 1, rtol=1e-5)    # same partner and weight for lq and gt
    assert not np.allclose(gt_m, gt)
    lq_m2, gt_m2 = mixup(lq, gt, np.random.default_rng(2))
    np.testing.assert_array_equal(gt_m, gt_m2)
    lq_t, gt_t = mixup(paddle.to_tensor(lq), paddle.to_tensor(gt), np.random.default_rng(2))
    np.testing.assert_allclose(gt_t.numpy(), gt_m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lq_t.numpy(), lq_m, rtol=1e-5, atol=1e-6)
    # each output is a convex combination of its own sample and one partner
    perm = np.random.default_rng(2).permutation(4)
    lam = (gt_m - gt[perm]) / (gt - gt[perm] + 1e-12)
    assert np.all((lam.reshape(4, -1).std(1) < 1e-3) | (perm == np.arange(4)))


# ------------------------------------------------------------------------------------------ bad images
def test_unreadable_image_and_skip_bad(folder):
    with open(os.path.join(folder[0], "b.png"), "wb") as f:
        f.write(b"not a png")
    ds = PairedFolderDataset(lq_dir=folder[0], gt_dir=folder[1])
    with pytest.raises(ImageError, match=r"b\.png"):
        ds[1]
    ds = PairedFolderDataset(lq_dir=folder[0], gt_dir=folder[1], skip_bad=True)
    with pytest.warns(UserWarning, match=r"1 skipped.*b\.png"):
        s = ds.sample(1, np.random.default_rng(0))
    assert s["name"] == "c" and ds.num_skipped == 1 and "b.png" in ds.skipped[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ds[1]["name"] == "c" and ds.num_skipped == 1  # remembered: no second warning
    assert ds[0]["name"] == "a"


# ------------------------------------------------------------------------------------------ SIDD .mat
def test_sidd_val_mat(tmp_path):
    import scipy.io

    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (2, 3, 8, 8, 3)).astype(np.uint8)
    gt = rng.integers(0, 256, (2, 3, 8, 8, 3)).astype(np.uint8)
    n_path, g_path = str(tmp_path / "ValidationNoisyBlocksSrgb.mat"), str(tmp_path / "ValidationGtBlocksSrgb.mat")
    scipy.io.savemat(n_path, {"ValidationNoisyBlocksSrgb": noisy})
    scipy.io.savemat(g_path, {"ValidationGtBlocksSrgb": gt})
    ds = SIDDValDataset(noisy_mat=n_path, gt_mat=g_path)
    assert len(ds) == 6
    s = ds[4]  # image 1, block 1
    assert s["name"] == "ValidationBlocksSrgb_4" and s["lq"].shape == (3, 8, 8)
    np.testing.assert_allclose(s["lq"], noisy[1, 1].transpose(2, 0, 1) / 255.0, atol=1e-7)
    np.testing.assert_allclose(s["gt"], gt[1, 1].transpose(2, 0, 1) / 255.0, atol=1e-7)
    # a v7.3 (HDF5) file: scipy refuses it, ppir says what it is
    data = bytearray(open(n_path, "rb").read())
    data[124:126] = b"\x00\x02"
    v73 = str(tmp_path / "v73.mat")
    open(v73, "wb").write(bytes(data))
    with pytest.raises(DatasetError, match=r"v7\.3 \(HDF5\)"):
        SIDDValDataset(noisy_mat=v73, gt_mat=g_path)


# ------------------------------------------------------------------------------------------ synthetic
@pytest.mark.parametrize("degradation, lo, hi", [
    ("gaussian_noise", 14, 36), ("poisson_gaussian_noise", 14, 36), ("motion_blur", 8, 40), ("rain", 10, 36)])
def test_synthetic_degrades_deterministically(degradation, lo, hi):
    ds = SyntheticDataset(degradation=degradation, images=["astronaut", "camera"], size=[48, 64], num_samples=3,
                          seed=3)
    again = SyntheticDataset(degradation=degradation, images=["astronaut", "camera"], size=[48, 64],
                             num_samples=3, seed=3)
    other = SyntheticDataset(degradation=degradation, images=["astronaut", "camera"], size=[48, 64],
                             num_samples=3, seed=4)
    assert len(ds) == 3
    for k in range(3):
        s = ds[k]
        assert s["lq"].shape == s["gt"].shape == (3, 48, 64) and s["lq"].dtype == np.float32
        assert 0 <= s["lq"].min() and s["lq"].max() <= 1
        assert lo < psnr(s["lq"], s["gt"]) < hi, (degradation, psnr(s["lq"], s["gt"]))
        np.testing.assert_array_equal(s["lq"], again[k]["lq"])
    assert not np.array_equal(ds[0]["lq"], other[0]["lq"])
    np.testing.assert_array_equal(ds[0]["gt"], ds[2]["gt"])  # clean images are reused in turn
    p = SyntheticDataset(degradation=degradation, images=["coffee"], size=[40, 40], patch_size=16,
                         use_flip=True, use_rot=True)
    a, b = p.sample(0, np.random.default_rng(5)), p.sample(0, np.random.default_rng(5))
    np.testing.assert_array_equal(a["lq"], b["lq"])
    assert a["lq"].shape == (3, 16, 16)
    assert not np.array_equal(a["lq"], p.sample(0, np.random.default_rng(6))["lq"])


def test_synthetic_image_dir_and_errors(tmp_path):
    write_png(str(tmp_path / "clean" / "one.png"), 0, 20, 20)
    ds = SyntheticDataset(image_dir=str(tmp_path / "clean"), num_samples=2)
    assert len(ds) == 2 and ds[1]["name"] == "one_00001"
    with pytest.raises(DatasetError, match="nowhere"):
        SyntheticDataset(image_dir=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="degradation"):
        SyntheticDataset(degradation="snow")
    with pytest.raises(ConfigError, match="eagle"):
        SyntheticDataset(images=["eagle"])  # needs a download: refused


def test_dataset_config_validation():
    from ppir.config import load_config

    load_config({"datasets": {"train": {"type": "SyntheticDataset", "degradation": "rain", "patch_size": 64,
                                        "size": [128, 128], "sigma_max": 30, "use_rot": True}}})
    with pytest.raises(ConfigError, match="patch_size"):
        load_config({"datasets": {"train": {"type": "GoProDataset", "patch_size": "256"}}})


def test_make_synthetic_data_cli(tmp_path):
    out = tmp_path / "pairs"
    r = run_tool("make_synthetic_data", "--degradation", "motion_blur", "--out", out, "--num", 2,
                 "--size", "24x40", "--seed", 1, "--images", "chelsea")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out / "lq")) == sorted(os.listdir(out / "gt")) == ["chelsea_00000.png",
                                                                                 "chelsea_00001.png"]
    assert cv2.imread(str(out / "lq" / "chelsea_00000.png")).shape == (24, 40, 3)
    ds = PairedFolderDataset(lq_dir=str(out / "lq"), gt_dir=str(out / "gt"))
    assert len(ds) == 2 and psnr(ds[0]["lq"], ds[0]["gt"]) < 40

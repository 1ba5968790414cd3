"""The quick start's test images are fair: disjoint from every demo's training and validation images (by name
and by content, so an alias such as scikit-image's `cat`, which is `chelsea`, cannot slip in), colour or
degraded as gray, and the synthetic test-data options the quick start uses do what they say."""
import glob
import os

import numpy as np
import pytest

import ppir
from conftest import REPO
from ppir.commands import quickstart
from ppir.data.synthetic import SyntheticDataset, apply_kernel, is_gray, load_skimage_image

TEST = quickstart.TEST_IMAGES.split(",")


def demo_config_lists():
    """(config file, split, image names) for every demo config and pretraining recipe."""
    out = []
    for path in sorted(glob.glob(os.path.join(REPO, "configs", "demo", "*.yml"))):
        datasets = ppir.load_config(path).get("datasets") or {}
        for split, entry in datasets.items():
            assert entry.get("type") == "SyntheticDataset" and entry.get("images"), (path, split)
            out.append((os.path.basename(path), split, list(entry["images"])))
    return out


def thumbprint(name):
    """The image's content at 16x16 (8-bit): the same picture under two names has the same thumbprint."""
    import cv2
    img = load_skimage_image(name)
    return cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA).round(2).tobytes()


def test_the_test_set_shares_no_image_with_any_training_or_validation_list():
    lists = demo_config_lists()
    assert {f for f, _, _ in lists} >= {f"{stem}.yml" for stem in quickstart.DEMOS.values()}
    used = {name for _, _, names in lists for name in names}
    assert len(TEST) == len(set(TEST)) >= 5
    assert not used & set(TEST)
    # by content too: scikit-image's `cat` is `chelsea`, so a config naming `cat` would train on a test image
    test_prints = {thumbprint(n): n for n in TEST}
    assert len(test_prints) == len(TEST)
    assert test_prints[thumbprint("cat")] == "chelsea"  # the check can see an alias
    for name in used:
        assert thumbprint(name) not in test_prints, f"{name} is the test image {test_prints.get(thumbprint(name))}"
    # and training and validation of each demo share nothing either
    for cfg in {f for f, _, _ in lists}:
        train = {n for f, s, names in lists if f == cfg and s == "train" for n in names}
        val = {n for f, s, names in lists if f == cfg and s == "val" for n in names}
        assert not train & val, cfg


def test_gray_images_get_gray_noise_and_colour_images_colour_noise():
    for degradation in ("gaussian_noise", "poisson_gaussian_noise"):
        ds = SyntheticDataset(degradation=degradation, images=["camera", "chelsea"], gray_noise=True,
                              max_side=64, seed=1)
        (cam, _, _), (cat, _, _) = ds.load_pair(0), ds.load_pair(1)
        assert is_gray(cam) and not is_gray(cat)
        # without gray_noise the gray image gets independent noise per channel (the recorded pretraining runs)
        old = SyntheticDataset(degradation=degradation, images=["camera"], max_side=64, seed=1).load_pair(0)[0]
        assert not is_gray(old)


def test_max_side_shrinks_with_the_aspect_kept():
    ds = SyntheticDataset(images=["chelsea", "grace_hopper", "motorcycle_left"], max_side=192)
    shapes = [ds.clean_image(i)[0].shape for i in range(3)]
    assert shapes == [(128, 192, 3), (192, 164, 3), (130, 192, 3)]
    with pytest.raises(ppir.errors.ConfigError, match="max_side"):
        SyntheticDataset(max_side=-1)


def test_blur_kernel_is_the_one_that_blurred_the_pair(tmp_path):
    ds = SyntheticDataset(degradation="motion_blur", images=["camera", "chelsea"], num_samples=3, seed=4,
                          max_side=96, kernel_size_min=7, kernel_size_max=15)
    for i in range(3):
        lq, gt, _ = ds.load_pair(i)
        kernel = ds.blur_kernel(i)
        assert kernel.shape[0] % 2 == 1 and 7 <= kernel.shape[0] <= 15 and abs(kernel.sum() - 1) < 1e-5
        np.testing.assert_array_equal(np.clip(apply_kernel(gt, kernel), 0, 1), lq)
    names = ds.export_pairs(str(tmp_path))
    from ppir.data.synthetic import read_kernel
    for i, name in enumerate(names):
        np.testing.assert_array_equal(read_kernel(str(tmp_path / "kernel" / f"{name}.npy")), ds.blur_kernel(i))
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones((3, 3)))
    with pytest.raises(ppir.errors.ImageError, match="summing to 1"):
        read_kernel(str(bad))
    with pytest.raises(ppir.errors.ConfigError, match="motion_blur"):
        SyntheticDataset(images=["camera"]).blur_kernel(0)

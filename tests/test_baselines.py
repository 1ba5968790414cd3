"""ppir.baselines: each classical filter at its best parameter on the given pairs, scored by ppir's metrics."""
import numpy as np
import pytest
import skimage.data

from ppir.baselines import (FILTERS, ClassicalFilter, best_filters, best_of, dataset_pairs, markdown_rows,
                            methods_for, missing_notes, text_rows)
from ppir.metrics import PSNR, SSIM


@pytest.fixture(scope="module")
def noisy_pairs():
    rng = np.random.default_rng(0)
    out = []
    for img in (skimage.data.astronaut()[100:228, 150:278], skimage.data.chelsea()[50:178, 100:228]):
        noisy = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
        out.append((noisy, img))
    return out


def test_every_filter_is_at_its_best_grid_value(noisy_pairs):
    psnr = PSNR()
    rows = best_filters(noisy_pairs, [psnr, SSIM()])
    assert [r.name for r in rows] == [f.name for f in FILTERS]
    for f, r in zip(FILTERS, rows):
        assert r.value in f.grid and set(r.scores) == {"psnr", "ssim"}
        # no other grid value does better on these pairs (the oracle choice the docs promise)
        for value in f.grid:
            mean = np.mean([psnr(f.apply(lq, value), gt) for lq, gt in noisy_pairs])
            assert mean <= r.scores["psnr"] + 1e-9
    # on sigma-20 noise every filter improves on the input; best_of picks the highest PSNR
    input_psnr = np.mean([psnr(lq, gt) for lq, gt in noisy_pairs])
    assert all(r.scores["psnr"] > input_psnr + 1 for r in rows)
    assert best_of(rows).scores["psnr"] == max(r.scores["psnr"] for r in rows)
    # at_edge marks exactly the rows whose value ends the grid (here median's kernel 3 on these small crops)
    assert [r.at_edge for r in rows] == [r.value in (f.grid[0], f.grid[-1]) for f, r in zip(FILTERS, rows)]


def test_at_edge_says_when_the_best_value_ends_the_grid(noisy_pairs):
    """A grid that stops short of the best blur for sigma-20 noise picks its last value and says so; a grid
    around the best value does not."""
    gaussian = FILTERS[0].apply
    short = best_filters(noisy_pairs, [PSNR()], [ClassicalFilter("blur", "sigma", (0.2, 0.3), gaussian)])[0]
    around = best_filters(noisy_pairs, [PSNR()], [ClassicalFilter("blur", "sigma", (0.3, 1.0, 4.0), gaussian)])[0]
    assert (short.value, short.at_edge) == (0.3, True)
    assert (around.value, around.at_edge) == (1.0, False)
    # the printed rows (tools/eval.py --baselines) say it too
    edge_row, inner_row = text_rows([short, around], ["psnr"])
    assert "the end of its grid" in edge_row and "the end of its grid" not in inner_row
    edge_row, inner_row = markdown_rows([short, around], 2, ["psnr"])
    assert "(best on these images, at the end of its grid)" in edge_row
    assert "(best on these images)" in inner_row


def test_float_images_and_rows(noisy_pairs):
    as_float = [(lq / 255.0, gt / 255.0) for lq, gt in noisy_pairs]
    a = best_filters(as_float, [PSNR()], filters=FILTERS[:1])
    b = best_filters(noisy_pairs, [PSNR()], filters=FILTERS[:1])
    assert a[0].value == b[0].value and a[0].scores == pytest.approx(b[0].scores)
    row = markdown_rows(a, 2, ["psnr"])[0]
    assert row.startswith(f"| Gaussian blur, sigma {a[0].value:g} (best on these images) | 2 | ")
    with pytest.raises(ValueError, match="at least one image pair"):
        best_filters([], [PSNR()])


def _crops(degradation, **kw):
    from ppir.data.synthetic import SyntheticDataset
    ds = SyntheticDataset(degradation=degradation, images=["camera", "chelsea"], size=(64, 64), seed=3,
                          gray_noise=True, **kw)
    return dataset_pairs(ds)


def test_methods_fit_the_degradation_and_bm3d_is_optional(monkeypatch):
    from ppir import classical
    names = lambda d: [m.name for m in methods_for(d)]  # noqa: E731
    assert names("rain") == names(None) == [f.name for f in FILTERS]
    assert [m.needs_kernel for m in methods_for("motion_blur")] == [False, True, True]
    assert all("oracle" in m.name for m in methods_for("motion_blur") if m.needs_kernel)
    monkeypatch.setattr(classical, "bm3d_available", lambda: False)
    assert not any("BM3D" in n for n in names("gaussian_noise"))
    assert missing_notes("gaussian_noise") == [classical.BM3D_MISSING] and "pip install bm3d" in classical.BM3D_MISSING
    assert missing_notes("motion_blur") == []


def test_bm3d_rows_beat_the_filters_on_noise():
    """Blind BM3D (sigma estimated from the image; Poisson-Gaussian through the Anscombe route) is the strong
    classical row: it beats every OpenCV filter tuned on the images themselves, and each row is timed."""
    pytest.importorskip("bm3d")  # requirements-dev.txt installs it, so CI checks these rows
    for degradation in ("gaussian_noise", "poisson_gaussian_noise"):
        pairs = _crops(degradation, sigma_min=25, sigma_max=25, peak_min=20, peak_max=20)
        rows = best_filters(pairs, [PSNR()], methods_for(degradation))
        assert "BM3D" in rows[-1].name and rows[-1].param == "" and rows[-1].label() == rows[-1].name
        assert best_of(rows) is rows[-1], [(r.name, r.scores) for r in rows]
        assert all(r.seconds > 0 for r in rows)


def test_poisson_gaussian_fit_finds_the_noise_model():
    from ppir.classical import fit_poisson_gaussian
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0.1, 0.9, 256, dtype=np.float64), (256, 1))[..., None].repeat(3, 2)
    a, b = 1 / 40.0, (5 / 255.0) ** 2
    noisy = ramp + rng.normal(0, 1, ramp.shape) * np.sqrt(a * ramp + b)
    fa, fb = fit_poisson_gaussian(noisy)
    assert fa == pytest.approx(a, rel=0.2) and fb < 3 * b + 1e-4


def test_deblurring_rows_and_the_oracles_need_the_true_kernel():
    pairs = _crops("motion_blur", kernel_size_min=9, kernel_size_max=9)
    assert all(len(p) == 3 for p in pairs)
    rows = best_filters(pairs, [PSNR()], methods_for("motion_blur"))
    input_psnr = np.mean([PSNR()(p[0], p[1]) for p in pairs])
    oracle = [r for r in rows if "oracle" in r.name]
    assert oracle and all(r.scores["psnr"] > input_psnr + 0.5 for r in oracle)
    assert rows[0].short().startswith("unsharp masking, sigma/amount ") and "/" in rows[0].short().split()[-1]
    with pytest.raises(ValueError, match="true blur kernel"):
        best_filters([p[:2] for p in pairs], [PSNR()], methods_for("motion_blur"))

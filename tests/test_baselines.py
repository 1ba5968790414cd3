"""ppir.baselines: each classical filter at its best parameter on the given pairs, scored by ppir's metrics."""
import numpy as np
import pytest
import skimage.data

from ppir.baselines import FILTERS, ClassicalFilter, best_filters, best_of, markdown_rows, text_rows
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

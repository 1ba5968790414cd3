"""`ppir.uint8`, the one 8-bit conversion, gives the bits of the five conversions it replaced (written out here as
they were: image_io's in the input's own precision, the pipeline's in float32 with two rounding modes, the VACC
stand-in's denormalize, metrics' float levels) on values dense around every rounding tie."""
import numpy as np
import pytest

from ppir.uint8 import ROUNDINGS, to_uint8, uint8_levels


def values(dtype):
    """Every level, every tie between two levels, the floats either side of each tie, and random values beyond
    both ends, as an N x 1 x 3 image."""
    k = np.arange(-3, 260, dtype=np.float64)
    ties = (k + 0.5) / 255.0
    x = np.concatenate([k / 255.0, ties, np.nextafter(ties, 2), np.nextafter(ties, -2),
                        np.random.default_rng(0).uniform(-0.2, 1.2, 5000)])
    return x[:x.size // 3 * 3].astype(dtype).reshape(-1, 1, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nearest_is_image_io_s_old_conversion(dtype):
    x = values(dtype)
    old = np.clip(np.rint(np.clip(x, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    assert np.array_equal(to_uint8(x), old)


def test_float32_modes_are_the_pipeline_s_old_conversion():
    x = values(np.float32)
    c = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    old = {"nearest": np.clip(np.rint(c * 255.0), 0, 255).astype(np.uint8),
           "half_up": np.clip(np.floor((c + 0.5 / 255.0) * 255.0), 0, 255).astype(np.uint8)}
    for rounding in ROUNDINGS:
        assert np.array_equal(to_uint8(x, rounding), old[rounding]), rounding
    denormalized = np.clip(np.rint(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)
    assert np.array_equal(to_uint8(x), denormalized)
    assert (to_uint8(np.float32([0.5 / 255]), "half_up")[0], to_uint8(np.float32([0.5 / 255]))[0]) == (1, 0)
    with pytest.raises(ValueError, match="rounding must be one of nearest, half_up, got 'up'"):
        to_uint8(x, "up")


def test_levels_stay_floats_rounded_half_to_even():
    x = np.array([0.5 / 255, 1.5 / 255, 0.2, 1.0])
    assert np.array_equal(uint8_levels(x), np.round(x * 255.0) / 255.0)
    assert uint8_levels(x).dtype == np.float64

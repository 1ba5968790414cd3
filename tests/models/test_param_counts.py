"""Default parameter counts equal the official models' (shared MIRNet modules counted once)."""
import os

import pytest

import ppir

from conftest import REPO

COUNTS = [
    ("mirnet_sidd.yml", 31_787_419),
    ("hinet_sidd_0.5x.yml", 22_176_518),
    ("hinet_sidd_1x.yml", 88_669_702),
    ("hinet_rain13k.yml", 88_669_702),
    ("hinet_gopro.yml", 88_668_806),
    ("mimo_unet_gopro.yml", 6_807_171),
    ("mimo_unetplus_gopro.yml", 16_107_651),
]


@pytest.mark.parametrize("config,expected", COUNTS)
def test_default_parameter_count(config, expected):
    model = ppir.build_model(os.path.join(REPO, "configs", config))
    assert ppir.count_parameters(model) == expected

"""Every golden file (outputs of the official PyTorch models) is reproduced by the Paddle networks.

The weights go through the same loader users use (`ppir.load_weights`, name mapping included), so this also
checks the converter's rules (InstanceNorm scale, PReLU _weight, MIRNet aliases and blur buffers).
"""
import hashlib
import os
import re

import numpy as np
import paddle
import pytest

import ppir

from conftest import REPO, golden_file, golden_files, golden_meta

ATOL = RTOL = 1e-5
# MIMO-UNetPlus at equal num_res has the same keys and (in eval) the same outputs as MIMO-UNet.
ALSO_AS = {"MIMOUNet": ["MIMOUNetPlus"]}


def cases():
    out = []
    for path in golden_files():
        meta = golden_meta(path)
        for arch in [meta["arch"]] + ALSO_AS.get(meta["arch"], []):
            out.append(pytest.param(path, arch, meta["constructor_kwargs"],
                                    id=f"{os.path.basename(path)[:-4]}-{arch}"))
    return out


@pytest.mark.parametrize("path,arch,kwargs", cases())
def test_golden_outputs(require_golden, path, arch, kwargs):
    model = ppir.build_model({"type": arch, **kwargs})
    report = ppir.load_weights(model, path)
    assert report.ok and not report.unexpected
    model.eval()
    with np.load(path, allow_pickle=False) as d:
        n_inputs = len([k for k in d.files if k.startswith("input/")])
        assert n_inputs == 2
        for i in range(n_inputs):
            x = d[f"input/{i}"]
            with paddle.no_grad():
                outs = model(paddle.to_tensor(x))
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            expected = sorted(k for k in d.files if k.startswith(f"output/{i}/"))
            assert len(outs) == len(expected)
            for j, key in enumerate(expected):
                got, want = outs[j].numpy(), d[key]
                assert got.shape == want.shape, key
                np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL, err_msg=f"{path}: {key}")


def test_shipped_fixtures_are_the_documented_files():
    """The fixtures ship with the repo (so a clone with nothing beside it checks parity) and are the files whose
    sha256 the fixture README lists."""
    here = os.path.join(REPO, "tests", "fixtures", "golden")
    table = re.findall(r"^\| `(\S+\.npz)` \| [\d,]+ \| `([0-9a-f]{64})` \|$",
                       open(os.path.join(here, "README.md"), encoding="utf-8").read(), re.M)
    assert len(table) == 5
    for name, digest in table:
        with open(os.path.join(here, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name
    assert sorted(n for n, _ in table) == sorted(n for n in os.listdir(here) if n.endswith(".npz"))


@pytest.mark.parametrize("name,suffix,default,final", [
    ("hinet_wf8_perturbed.npz", "norm.scale", 1.0, 1),  # InstanceNorm weight -> scale
    ("mirnet_f8_rrg2_msrb2_perturbed.npz", "_weight", 0.25, 0),  # PReLU weight -> _weight
])
def test_perturbed_files_really_test_the_renames(name, suffix, default, final):
    """A perturbed file loaded and then reset to the layer's default init must fail the comparison: the renamed
    parameters carry signal, so a converter that dropped them could not pass test_golden_outputs."""
    path = golden_file(name)
    meta = golden_meta(path)
    model = ppir.build_model({"type": meta["arch"], **meta["constructor_kwargs"]})
    ppir.load_weights(model, path)
    reset = [p for n, p in model.named_parameters() if n.endswith(suffix)]
    assert reset
    for p in reset:
        p.set_value(np.full(p.shape, default, "float32"))
    model.eval()
    with np.load(path) as d, paddle.no_grad():
        outs = model(paddle.to_tensor(d["input/0"]))
        got = (outs if isinstance(outs, (list, tuple)) else [outs])[final].numpy()
        assert np.abs(got - d[f"output/0/{final}"]).max() > 1e-3


def test_hinet_gopro_placement_is_what_the_parity_checks():
    """hinet_wf8_hin34_perturbed.npz (HINet-GoPro's instance norms, encoder levels 3-4) passes test_golden_outputs
    only with that placement: the same weights in a network with the SIDD placement (levels 0-4; the extra norms
    keep their default init) give other outputs, so the parity test pins where the norms sit."""
    path = golden_file("hinet_wf8_hin34_perturbed.npz")
    meta = golden_meta(path)
    assert (meta["constructor_kwargs"]["hin_position_left"], meta["constructor_kwargs"]["hin_position_right"]) == (3, 4)
    sidd = ppir.build_model({"type": "HINet", **{**meta["constructor_kwargs"], "hin_position_left": 0}})
    report = ppir.load_weights(sidd, path, allow_partial=True)
    assert report.missing and all(".norm." in k for k in report.missing)  # only the extra norms lack weights
    sidd.eval()
    with np.load(path) as d, paddle.no_grad():
        got = sidd(paddle.to_tensor(d["input/0"]))[1].numpy()
        assert np.abs(got - d["output/0/1"]).max() > 1e-3

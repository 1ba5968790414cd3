"""Every golden file (outputs of the official PyTorch models) is reproduced by the Paddle networks.

The weights go through the same loader users use (`ppir.load_weights`, name mapping included), so this also
checks the converter's rules (InstanceNorm scale, PReLU _weight, MIRNet aliases and blur buffers).
"""
import os

import numpy as np
import paddle
import pytest

import ppir

from conftest import golden_files, golden_meta

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


def test_perturbed_files_really_test_the_renames(require_golden):
    """Loading a perturbed file with InstanceNorm/PReLU left at their defaults must fail the comparison."""
    path = [p for p in golden_files() if "hinet_wf8_perturbed" in p]
    if not path:
        pytest.skip("hinet_wf8_perturbed.npz not present")
    meta = golden_meta(path[0])
    model = ppir.build_model({"type": meta["arch"], **meta["constructor_kwargs"]})
    ppir.load_weights(model, path[0])
    for name, p in model.named_parameters():
        if name.endswith("norm.scale"):
            p.set_value(np.ones(p.shape, "float32"))
    model.eval()
    with np.load(path[0]) as d, paddle.no_grad():
        got = model(paddle.to_tensor(d["input/0"]))[1].numpy()
        assert np.abs(got - d["output/0/1"]).max() > 1e-3

"""Validation during training on a compiled program: which backend `val.backend: auto` picks (from the config and
the data only, so a resumed run picks alike), and that compiling for validation leaves training untouched."""
import json
import subprocess

import numpy as np
import pytest

from conftest import REPO
from test_train import max_abs_diff, tiny_config, train_cmd, weights

import ppir  # noqa: F401  (sets OMP threads before paddle)
from ppir.engine.evaluator import COMPILE_PAYS_GMACS, validation_backend, validation_work_gmacs  # noqa: E402
from ppir.errors import ConfigError  # noqa: E402
from ppir.profiling import count_macs  # noqa: E402


class Images:
    """A validation set of `n` noisy copies of one H x W image (only what the estimate reads)."""

    def __init__(self, n, h, w):
        self.n, self.h, self.w = n, h, w

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        gt = rng.random((3, self.h, self.w), dtype=np.float32)
        return {"lq": gt, "gt": gt, "name": f"img{i}"}


@pytest.fixture(scope="module")
def model():
    return ppir.build_model({"model": {"type": "HINet", "wf": 8, "depth": 3}})


def test_work_estimate_is_the_networks_macs_over_the_images(model):
    # the estimate counts per pixel on a small input; the network's MACs on the real size agree to within its
    # size-independent part (global pooling and the like: nothing in HINet)
    exact = count_macs(model, (1, 3, 96, 128)) * 5 / 1e9
    assert validation_work_gmacs(model, Images(5, 96, 128)) == pytest.approx(exact, rel=1e-3)
    assert validation_work_gmacs(model, Images(5, 96, 128), max_images=2) == pytest.approx(exact * 2 / 5, rel=1e-3)
    assert validation_work_gmacs(model, Images(5, 96, 128), self_ensemble=True) == pytest.approx(exact * 8, rel=1e-3)


def test_auto_compiles_only_when_a_validation_is_worth_it(model):
    per_image = validation_work_gmacs(model, Images(1, 256, 256))
    few = max(1, int(0.5 * COMPILE_PAYS_GMACS / per_image))
    many = int(2 * COMPILE_PAYS_GMACS / per_image) + 1
    backend, why = validation_backend(model, Images(few, 256, 256))
    assert backend == "dygraph" and "dygraph" in why and "GMACs" in why
    backend, why = validation_backend(model, Images(many, 256, 256))
    assert backend == "auto" and "compiles" in why
    # max_images counts, not the size of the set
    assert validation_backend(model, Images(many, 256, 256), max_images=few)[0] == "dygraph"
    # on a GPU "auto" runs dygraph, as backends' auto does there (whatever the work)
    import paddle

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paddle.device, "get_device", lambda: "gpu:0")
        assert validation_backend(model, Images(many, 256, 256))[0] == "dygraph"
    # an explicit choice is kept, whatever the work
    for kind in ("dygraph", "paddle", "onnxruntime"):
        assert validation_backend(model, Images(many, 256, 256), kind)[0] == kind


def test_unknown_val_backend_is_a_config_error(tmp_path):
    from ppir.sections import ValOptions, options_from

    cfg = ppir.load_config(str(tiny_config(tmp_path)), ["val.backend=gpu"])
    with pytest.raises(ConfigError, match="val.backend must be one of auto, dygraph, paddle, onnxruntime"):
        options_from(cfg, "val", ValOptions)


def test_compiled_validation_trains_exactly_like_dygraph_validation(tmp_path):
    # the same run validated on dygraph and on the network compiled anew at each validation (Paddle Inference):
    # bit-identical weights, validation metrics within the export tolerance, and the log says which backend
    # validated. Bit-identical on any CPU because compiling and running the predictor leave training's state as it
    # was: tracing does not touch the network, and the predictor's reset of MKL/OpenMP to one thread is undone
    # (ppir.infer.math_threads; without that, training after the first validation ran single-threaded, which
    # changed the weights by 7e-9 on AMD EPYC and by nothing on the Intel Xeon this test was written on)
    runs = {}
    for kind in ("dygraph", "paddle"):
        cfg = tiny_config(tmp_path, kind, iters=10, val_interval=5, save_interval=5)
        r = subprocess.run(train_cmd(cfg, "-o", f"val.backend={kind}"), capture_output=True, text=True, cwd=REPO,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        runs[kind] = [json.loads(x) for x in (tmp_path / kind / "metrics.jsonl").read_text().splitlines()]
        assert f"validation on {kind} (val.backend)" in (tmp_path / kind / "train.log").read_text()
    assert "compiled" in (tmp_path / "paddle" / "train.log").read_text()
    assert max_abs_diff(weights(tmp_path / "dygraph" / "latest"), weights(tmp_path / "paddle" / "latest")) == 0
    assert [v["iter"] for v in runs["dygraph"]] == [v["iter"] for v in runs["paddle"]] == [5, 10]
    for a, b in zip(runs["dygraph"], runs["paddle"]):
        assert a["metrics"]["psnr"] == pytest.approx(b["metrics"]["psnr"], abs=1e-3)
        assert a["metrics"]["ssim"] == pytest.approx(b["metrics"]["ssim"], abs=1e-5)

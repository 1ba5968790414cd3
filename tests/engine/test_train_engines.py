"""train.engine: `to_static` (the forward as a static program, backward eager) against plain `dygraph`.

Both run the same kernels on the CPU, so the runs agree to float rounding: measured over 4 steps, HINet and
MIMO-UNet+ (dropout included) bit for bit, MIRNet within 5.4e-7 (the static program reorders a few float sums).
Bounds: logged losses equal as printed (6 significant digits), weights within 1e-5. A to_static run also resumes
exactly (MIMO-UNet+: its dropout draws from paddle's generator, restored from the checkpoint).
"""
import re

import numpy as np
import pytest

from ppir.convert.paddle_pickle import read_paddle_pdparams
from ppir.errors import ConfigError

from conftest import TINY_NETWORKS, tiny_train_config

STEPS = 4


def config(net, out_dir, engine):
    return tiny_train_config(net, out_dir, STEPS, engine=engine)


def train(cfg, resume=None):
    from ppir.engine.trainer import Trainer

    Trainer(cfg, resume=resume, progress=False).train()


def losses(out_dir):
    return re.findall(r"iter \d+/\d+ .*?loss (\S+)", (out_dir / "train.log").read_text())


def final(out_dir):
    return read_paddle_pdparams(str(out_dir / "checkpoints" / f"iter_{STEPS:08d}" / "model.pdparams"))


@pytest.mark.parametrize("net", sorted(TINY_NETWORKS))
def test_to_static_trains_like_dygraph(tmp_path, net):
    train(config(net, tmp_path / "dygraph", "dygraph"))
    train(config(net, tmp_path / "static", "to_static"))
    assert len(losses(tmp_path / "static")) == STEPS
    # not bit-equal: the static program may fuse or reorder float32 arithmetic, and whether the last bits
    # agree depends on the CPU's kernels (printed at 6 digits, a last-bit change can flip the last digit)
    static, dygraph = (np.array(losses(tmp_path / k), dtype=np.float64) for k in ("static", "dygraph"))
    np.testing.assert_allclose(static, dygraph, rtol=1e-5, atol=0)
    a, b = final(tmp_path / "dygraph"), final(tmp_path / "static")
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) <= 1e-5
    assert "forward as a static program" in (tmp_path / "static" / "train.log").read_text()


def test_to_static_resumes_exactly(tmp_path):
    cfg = config("mimo_unetplus", tmp_path / "full", "to_static")
    train(cfg)
    train(config("mimo_unetplus", tmp_path / "resumed", "to_static"),
          resume=str(tmp_path / "full" / "checkpoints" / f"iter_{STEPS // 2:08d}"))
    a, b = final(tmp_path / "full"), final(tmp_path / "resumed")
    # bit-equal on any CPU: both runs take the same code path with the same thread counts on the same machine
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_unknown_engine_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.engine must be one of"):
        train(config("hinet", tmp_path / "x", "graph"))

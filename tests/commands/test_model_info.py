"""MAC counting (ppir.profiling), tools/model_info.py, and the numbers docs/models/*.md print.

* The proxy count (run at H/k x W/k, scale by k^2) is exact: it equals the direct count.
* The counter reproduces the true MACs counted on the official PyTorch code (figures in docs/models/*.md).
* Every table row in docs/models/*.md equals what the code computes, so the docs cannot drift.
(Parameter counts of the paper configs are tests/models/test_param_counts.py's.)
"""
import glob
import json
import os
import re

import paddle
import paddle.nn as nn
import pytest

import ppir
from ppir.errors import ConfigError
from ppir.models.common import model_facts
from ppir.profiling import (ProfileError, auto_proxy, count_macs, default_shape, mac_count, model_profile,
                            valid_proxies)

from conftest import REPO, run_tool

DEMO = {name: os.path.join(REPO, "configs", "demo", f"{name}_synthetic.yml") for name in ("hinet", "mimo_unet", "mirnet")}

# ---------------------------------------------------------------------------------- cache of real profiles
_PROFILES = {}


def profile(config, shape):
    """model_profile(config, shape), built once per distinct model section and shape in this session."""
    cfg = ppir.load_config(os.path.join(REPO, config))
    key = (json.dumps(cfg["model"], sort_keys=True), tuple(shape))
    if key not in _PROFILES:
        _PROFILES[key] = model_profile(cfg, shape=shape)
    return _PROFILES[key]


# ------------------------------------------------------------------------------------- exactness of the proxy
@pytest.mark.parametrize("net", sorted(DEMO))
def test_proxy_count_equals_direct_count(net):
    model = ppir.build_model(DEMO[net])
    shape = (1, 3, 64, 96)
    direct = mac_count(model, shape, proxy=1)
    ks = valid_proxies(model, shape)
    assert ks[0] == 1 and len(ks) >= 3, ks
    for k in ks[1:]:
        proxied = mac_count(model, shape, proxy=k)
        assert proxied.total == direct.total, k
        assert proxied.by_kind == direct.by_kind and proxied.constant == direct.constant
    assert auto_proxy(model, shape) == ks[-1]


@pytest.mark.parametrize("net", sorted(DEMO))
def test_macs_scale_with_area(net):
    """Doubling H and W multiplies the MACs by exactly 4, except MIRNet's layers after global pooling
    (channel attention, SKFF squeeze), whose MACs do not depend on the size."""
    model = ppir.build_model(DEMO[net])
    small, big = mac_count(model, (1, 3, 16, 24)), mac_count(model, (1, 3, 32, 48))
    assert big.spatial == 4 * small.spatial
    assert big.constant == small.constant
    if net == "mirnet":
        assert small.constant > 0 and big.total != 4 * small.total
    else:
        assert small.constant == 0 and big.total == 4 * small.total
    assert small.calls == big.calls


def test_hooks_count_each_call_of_shared_layers():
    """A layer used twice counts twice (MIRNet reuses DAUs and SKFF[0]); transposed conv counts input elements."""
    conv = nn.Conv2D(3, 5, 3, padding=1)

    class Twice(nn.Layer):
        def __init__(self):
            super().__init__()
            self.a, self.b = conv, conv
            self.up = nn.Conv2DTranspose(3, 2, 4, stride=2, padding=1)

        def forward(self, x):
            return self.b(self.a(x)[:, :3]), self.up(x)

    macs = mac_count(Twice(), (1, 3, 8, 8))
    assert macs.by_kind["conv"] == 2 * (5 * 8 * 8) * 3 * 9
    assert macs.by_kind["conv_transpose"] == (3 * 8 * 8) * 2 * 16


def test_inexact_proxy_is_refused():
    class Valid(nn.Layer):  # padding 0: output (H-2)x(W-2), neither constant nor proportional to H*W
        size_multiple, min_size = 1, 4

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 4, 3)

        def forward(self, x):
            return self.conv(x)

    model = Valid()
    assert count_macs(model, (1, 3, 8, 8)) == 4 * 6 * 6 * 27
    with pytest.raises(ProfileError, match="proxy=1"):
        count_macs(model, (1, 3, 8, 8), proxy=2)


def test_bad_shape_and_proxy_are_config_errors():
    model = ppir.build_model(DEMO["mirnet"])
    with pytest.raises(ConfigError, match="valid factors: 1, 2, 4"):
        count_macs(model, (1, 3, 64, 64), proxy=3)
    with pytest.raises(ConfigError, match="multiples of 4"):
        count_macs(model, (1, 3, 66, 64))
    with pytest.raises(ConfigError, match="channel"):
        count_macs(model, (1, 1, 64, 64))


def test_default_shapes():
    assert default_shape(ppir.build_model(DEMO["mimo_unet"])) == (1, 3, 360, 640)
    assert default_shape(ppir.build_model(DEMO["hinet"])) == (1, 3, 256, 256)
    cfg = ppir.load_config(DEMO["mirnet"], ["export.input_shape=[1,3,128,192]"])
    assert default_shape(ppir.build_model(cfg), cfg) == (1, 3, 128, 192)


# ------------------------------------------------------------------------------- the reference's true MACs
REFERENCE = [  # config, total G, conv G, transposed conv G (counted on the official code at the seed shapes)
    ("configs/hinet_sidd_0.5x.yml", 39.542, 38.468, 1.074),
    ("configs/hinet_sidd_1x.yml", 157.601, 153.306, 4.295),
    ("configs/mimo_unet_gopro.yml", 224.061, 220.286, 3.775),
    ("configs/mimo_unetplus_gopro.yml", 529.826, 526.051, 3.775),
]


@pytest.mark.parametrize("config,total,conv,convt", REFERENCE)
def test_true_macs_match_the_official_code(config, total, conv, convt):
    seed = model_facts(ppir.MODELS.get(ppir.load_config(os.path.join(REPO, config))["model"]["type"])).seed_shape
    m = profile(config, seed).macs
    assert round(m.total / 1e9, 3) == total
    assert round(m.by_kind["conv"] / 1e9, 3) == conv
    assert round(m.by_kind["conv_transpose"] / 1e9, 3) == convt
    assert m.constant == 0 and m.by_kind["linear"] == 0


def test_mirnet_macs_and_what_ppir_computes_differently(monkeypatch):
    """ppir counts 462.524 G for MIRNet at 256x256. The reference's ~479.95 G differs by two things ppir computes
    otherwise, each shown here: ResidualUpSample's bilinear branch runs its conv1x1 before the x2 upsample, on a
    quarter of the pixels (the official order gives 479.436 G: conv 377.967 + transposed conv 101.469), and the
    anti-aliasing blur is a Conv2d-like module upstream but a fixed functional kernel here, not counted (adding
    its MACs, depthwise 3x3 at stride 2, gives the reference's figure)."""
    from ppir.models import mirnet

    m = profile("configs/mirnet_sidd.yml", (1, 3, 256, 256)).macs
    assert m.shape == (1, 3, 256, 256)
    assert m.total == 462_524_485_632
    assert (round(m.by_kind["conv"] / 1e9, 1), round(m.by_kind["conv_transpose"] / 1e9, 1)) == (361.1, 101.5)
    assert 0 < m.constant < 1e6  # channel attention and SKFF squeeze convs on 1x1 pooled features

    # the official order of the bilinear branch: conv1x1(upsample(x))
    monkeypatch.setattr(mirnet.ResidualUpSample, "forward", lambda self, x: self.top(x) + self.bot(x))
    m = model_profile(ppir.load_config(os.path.join(REPO, "configs/mirnet_sidd.yml")), shape=(1, 3, 256, 256)).macs
    assert m.total == 479_435_919_360
    assert (round(m.by_kind["conv"] / 1e9, 1), round(m.by_kind["conv_transpose"] / 1e9, 1)) == (378.0, 101.5)

    blur = []
    original = mirnet.antialias_down2

    def counting(x):
        y = original(x)
        blur.append(y.shape[0] * y.shape[1] * y.shape[2] * y.shape[3] * 9)
        return y

    monkeypatch.setattr(mirnet, "antialias_down2", counting)
    model = ppir.build_model(os.path.join(REPO, "configs/mirnet_sidd.yml"))
    with paddle.no_grad():
        model(paddle.zeros([1, 3, 16, 16]))
    blur_256 = sum(blur) * (256 // 16) ** 2  # the blur's MACs scale with H*W (no global pooling before it)
    assert round(blur_256 / 1e9, 2) == 0.51
    assert round((m.total + blur_256) / 1e9, 2) == 479.95


# ----------------------------------------------------------------------------------------------- the CLI
def test_model_info_cli(tmp_path):
    out = tmp_path / "info.json"
    res = run_tool("model_info", "-c", "configs/demo/mirnet_synthetic.yml", "configs/demo/hinet_synthetic.yml",
                   "--json", out, timeout=300)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "network:     MIRNet" in text and "network:     HINet" in text
    assert "input:       1x3x256x256 (seed shape)" in text
    assert "do not depend on the input size" in text  # MIRNet's pooled-feature layers
    data = json.loads(out.read_text())
    assert [d["network"] for d in data] == ["MIRNet", "HINet"]
    for d, config in zip(data, ("mirnet", "hinet")):
        model = ppir.build_model(DEMO[config])
        assert d["parameters"] == ppir.count_parameters(model)
        assert d["macs"] == count_macs(model, (1, 3, 256, 256), proxy=8)
        assert f"{d['parameters']:,}" in text and f"{d['macs']:,}" in text


def _load_tool():
    """The tool's body (tools/model_info.py only runs it)."""
    from ppir.commands import model_info

    return model_info


def test_model_info_options_in_process(capsys):
    from ppir.cli import run

    tool = _load_tool()
    assert run(tool.main, ["-c", DEMO["mimo_unet"], "--markdown", "--shape", "64x96", "-o", "model.num_res=1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == tool.MARKDOWN_HEADER.splitlines()[0]
    model = ppir.build_model(DEMO["mimo_unet"], ["model.num_res=1"])
    assert f"| 1x3x64x96 | {count_macs(model, (1, 3, 64, 96)) / 1e9:.3f} |" in out[2]
    assert run(tool.main, ["-c", DEMO["mirnet"], "--proxy", "3"]) == 2
    assert run(tool.main, ["-c", DEMO["mirnet"], "--proxy", "two"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 2 and "valid factors" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        tool.parse_args(["--help"])
    assert exc.value.code == 0 and "examples:" in capsys.readouterr().out.lower()


# -------------------------------------------------------------------------------- docs/models/*.md tables
ROW = re.compile(r"^\| `(?P<config>configs/[^`]+\.yml)` \| (?P<name>\w+) \| (?P<params>[\d,]+) \| "
                 r"(?P<shape>\d+x\d+x\d+x\d+) \| (?P<macs>[\d.]+) \| (?P<conv>[\d.]+) \| (?P<convt>[\d.]+) \|$")
DOCS = sorted(glob.glob(os.path.join(REPO, "docs", "models", "*.md")))


def doc_rows():
    rows = []
    for path in DOCS:
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = ROW.match(line.strip())
                if m:
                    rows.append(pytest.param(m.groupdict(), id=f"{os.path.basename(path)}:{m['config']}"))
    return rows


def test_every_network_doc_has_a_table_covering_the_paper_configs():
    assert [os.path.basename(p) for p in DOCS] == ["hinet.md", "mimo_unet.md", "mirnet.md"]
    rows = [row.values[0] for row in doc_rows()]
    per_doc = {os.path.basename(row.id.split(":")[0]) for row in doc_rows()}
    assert per_doc == {"hinet.md", "mimo_unet.md", "mirnet.md"}
    paper = {os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "configs", "*.yml"))}
    assert paper <= {row["config"] for row in rows}, sorted(paper - {row["config"] for row in rows})


@pytest.mark.parametrize("row", doc_rows())
def test_doc_table_rows_match_the_code(row):
    prof = profile(row["config"], shape=tuple(int(v) for v in row["shape"].split("x")))
    assert row["name"] == prof.name
    assert int(row["params"].replace(",", "")) == prof.params
    assert row["macs"] == f"{prof.macs.total / 1e9:.3f}"
    assert row["conv"] == f"{prof.macs.by_kind['conv'] / 1e9:.3f}"
    assert row["convt"] == f"{prof.macs.by_kind['conv_transpose'] / 1e9:.3f}"

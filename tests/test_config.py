import os

import pytest

import ppir
from ppir.config import load_config, parse_override
from ppir.errors import ConfigError

from conftest import REPO, run_tool


def write(tmp_path, text, name="cfg.yml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_overrides_are_typed_and_apply(tmp_path):
    path = write(tmp_path, "model:\n  type: HINet\n  wf: 32\n")
    cfg = load_config(path, ["model.wf=16", "model.relu_slope=0.1", "model.hin_position_left=3"])
    assert cfg["model"] == {"type": "HINet", "wf": 16, "relu_slope": 0.1, "hin_position_left": 3}


def test_override_parsing():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("model.type=MIMOUNetPlus") == (["model", "type"], "MIMOUNetPlus")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("model.wf")


def test_unknown_model_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "model:\n  type: HINet\n  wff: 32\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert path in msg and "model.wff" in msg and "did you mean 'wf'" in msg


def test_unknown_key_from_override_names_the_option(tmp_path):
    path = write(tmp_path, "model:\n  type: MIRNet\n")
    with pytest.raises(ConfigError, match=r"-o model.n_feats.*unknown key"):
        load_config(path, ["model.n_feats=8"])


def test_wrong_type_rejected(tmp_path):
    path = write(tmp_path, "model:\n  type: MIMOUNet\n  num_res: eight\n")
    with pytest.raises(ConfigError, match=r"model.num_res must be int.*'eight'"):
        load_config(path)
    with pytest.raises(ConfigError, match="must be bool"):
        load_config(write(tmp_path, "model:\n  type: MIRNet\n  bias: 1\n", "b.yml"))


def test_unknown_type_and_section(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown model type 'HINett'.*did you mean 'HINet'"):
        load_config(write(tmp_path, "model:\n  type: HINett\n"))
    with pytest.raises(ConfigError, match=r"unknown top-level key 'modle'.*did you mean 'model'"):
        load_config(write(tmp_path, "modle:\n  type: HINet\n", "c.yml"))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yml"):
        load_config(str(tmp_path / "nope.yml"))
    with pytest.raises(ConfigError, match=r"cfg.yml: invalid YAML at line \d+, column \d+"):
        load_config(write(tmp_path, "model:\n  type: [HINet\n"))


def test_base_inheritance(tmp_path):
    write(tmp_path, "model:\n  type: HINet\n  wf: 32\n  depth: 5\n", "base.yml")
    child = write(tmp_path, "_base_: base.yml\nmodel:\n  wf: 16\n", "child.yml")
    assert load_config(child)["model"] == {"type": "HINet", "wf": 16, "depth": 5}


def test_every_shipped_config_is_valid():
    import glob

    paths = sorted(glob.glob(os.path.join(REPO, "configs", "*.yml")) + glob.glob(os.path.join(REPO, "configs", "demo", "*.yml")))
    assert len(paths) >= 10
    for p in paths:
        cfg = load_config(p)
        assert cfg["model"]["type"] in ppir.MODELS


def test_build_model_with_override_and_bad_value(tmp_path):
    model = ppir.build_model(os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml"), ["model.wf=8"])
    assert type(model).__name__ == "HINet"
    assert ppir.count_parameters(model) < 2_000_000
    with pytest.raises(ConfigError, match="hinet_sidd_0.5x.yml: model:"):
        ppir.build_model(os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml"), ["model.hin_position_left=7"])


def test_cli_prints_one_line_error(tmp_path):
    r = run_tool("convert_weights", "-c", "configs/hinet_sidd_1x.yml", "-o", "model.wff=3",
                 "--src", "x.pth", "--dst", str(tmp_path / "y.pdparams"))
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip() and "ccache" not in l and "warnings.warn" not in l]
    assert lines == [lines[0]] and lines[0].startswith("error: -o model.wff") and "Traceback" not in r.stderr


"""Export (to_static + jit.save + inference.yml) and ONNX conversion for the three networks at tiny widths.

Backends are compared on the golden weights (the official models' PyTorch init, outputs of magnitude ~1), so
absolute tolerances mean something, and also against the official network's own output.
"""
import importlib.util
import os
import shutil

import numpy as np
import paddle
import pytest
import yaml

import ppir
from ppir.export import export_model, max_rel_diff, run_paddle2onnx, verify_onnx
from ppir.infer.deploy_info import DeployInfo, ExportError, read_deploy_info
from ppir.infer.backends import DygraphBackend, OnnxRuntimeBackend, PaddleInferenceBackend
from ppir.infer.restorer import ImageRestorer

from conftest import REPO, golden_file

SMALL = {  # config, overrides, golden weights (PyTorch's init of the same tiny network; some perturbed)
    "hinet": ("hinet_sidd_0.5x.yml", ["model.wf=8"], "hinet_wf8_perturbed.npz"),
    "mimo_unet": ("mimo_unet_gopro.yml", ["model.num_res=1"], "mimo_unet_nr1.npz"),
    # two groups of two MSRBs: a layer called from several places must export right (a Python loop in
    # SKFF.forward once gave a program that mixed up shapes between calls, with one MSRB it did not show)
    "mirnet": ("mirnet_sidd.yml", ["model.n_feat=8", "model.n_RRG=2", "model.n_MSRB=2"],
               "mirnet_f8_rrg2_msrb2_perturbed.npz"),
}
FINAL = {"hinet": 1, "mimo_unet": 2, "mirnet": 0}  # index of the restored image among the golden outputs


def build(name):
    config, overrides, golden = SMALL[name]
    paddle.seed(0)
    model = ppir.build_model(os.path.join(REPO, "configs", config), overrides)
    path = golden_file(golden)
    ppir.load_weights(model, path)
    model.eval()
    return model, path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (model, export dir, golden path); one export per network for the whole module."""
    out = {}
    for name in SMALL:
        model, golden = build(name)
        folder = str(tmp_path_factory.mktemp(f"export_{name}"))
        export_model(model, folder)
        out[name] = (model, folder, golden)
    return out


def golden_case(golden, name):
    """The non-square golden input (1x3x48x80) and PyTorch's restored image for it."""
    with np.load(golden) as d:
        return d["input/1"], d[f"output/1/{FINAL[name]}"]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_export_files_and_inference_yml(exported, name):
    model, folder, _ = exported[name]
    for f in ("inference.json", "inference.pdiparams", "inference.yml"):
        assert os.path.getsize(os.path.join(folder, f)) > 0
    with open(os.path.join(folder, "inference.yml")) as f:
        raw = yaml.safe_load(f)
    assert raw["model"]["name"] == type(model).__name__
    assert raw["model"]["size_multiple"] == model.size_multiple
    assert raw["model"]["min_size"] == model.min_size
    assert raw["program"]["input_shape"] == [None, 3, None, None] and raw["program"]["input_name"] == "x"
    assert raw["postprocess"]["clip"] == [0.0, 1.0]
    assert raw["postprocess"]["rounding"] == ("half_up" if name == "mimo_unet" else "nearest")
    # the networks' own facts: image-wide statistics (tiling inexact), and whether the VACC recipe fits
    assert raw["tiling"]["image_wide"] == {"hinet": "instance norm", "mirnet": "global-pooling attention"}.get(name, "")
    assert ("resize_mode=bilinear" in raw["model"]["vacc_problem"]) == (name == "mimo_unet")  # nearest export
    info = read_deploy_info(folder)
    assert info.fixed_shape is None and info.model_name == type(model).__name__


@pytest.mark.parametrize("mkldnn", [False, True], ids=["onednn_off", "onednn_on"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_paddle_inference_matches_dygraph(exported, name, mkldnn):
    model, folder, golden = exported[name]
    x, torch_out = golden_case(golden, name)
    backend = PaddleInferenceBackend(folder, read_deploy_info(folder), enable_mkldnn=mkldnn, cpu_threads=2)
    got = backend.run(x)
    want = DygraphBackend(model).run(x)
    assert got.shape == (1, 3, 48, 80)  # one output: the final restored image
    assert max_rel_diff(got, want) < 1e-5
    np.testing.assert_allclose(got, torch_out, atol=1e-5, rtol=1e-5)  # and the official network's output
    x2 = np.random.default_rng(1).random((1, 3, 64, 32), dtype=np.float32)  # another size, same predictor
    assert max_rel_diff(backend.run(x2), DygraphBackend(model).run(x2)) < 1e-5


@pytest.mark.parametrize("name", sorted(SMALL))
def test_onnx_export_and_check(exported, name, capsys):
    model, folder, golden = exported[name]
    if name == "hinet":  # the tool itself (paddle2onnx in a child process, then the check)
        from ppir.cli import run

        assert run(_load_tool("export_onnx").main, ["--model_dir", folder]) == 0
        assert "max relative diff" in capsys.readouterr().out
    else:  # the same conversion and check, without a child process's start-up
        run_paddle2onnx(folder, os.path.join(folder, "model.onnx"), in_process=True)
        assert verify_onnx(folder, os.path.join(folder, "model.onnx")) < 1e-5
    onnx_path = os.path.join(folder, "model.onnx")
    import onnx

    graph_input = onnx.load(onnx_path).graph.input[0]
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "x" and not any(d.HasField("dim_value") for d in list(dims)[2:])  # dynamic H, W
    x, torch_out = golden_case(golden, name)
    got = OnnxRuntimeBackend(onnx_path, read_deploy_info(folder), cpu_threads=2).run(x)
    assert max_rel_diff(got, DygraphBackend(model).run(x)) < 1e-5
    np.testing.assert_allclose(got, torch_out, atol=1e-5, rtol=1e-5)


def test_export_model_cli(tmp_path, capsys):
    """The CLI: config + weights -> program + yml, checked against dygraph; a bad fixed shape is one line."""
    _, weights = build("mimo_unet")
    out = tmp_path / "mimo"
    from ppir.cli import run

    config = os.path.join(REPO, "configs", "mimo_unet_gopro.yml")
    assert run(_load_tool("export_model").main,
               ["-c", config, "-o", "model.num_res=1", "--weights", weights, "--save-dir", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "Export succeeded" in stdout and "max relative diff" in stdout
    info = read_deploy_info(str(out))
    assert (info.model_name, info.size_multiple, info.rounding) == ("MIMOUNet", 4, "half_up")
    assert info.source["arguments"]["num_res"] == 1

    args = ["-c", config, "-o", "model.num_res=1", "--weights", weights,
            "--save-dir", str(tmp_path / "bad"), "--input-shape", "1,3,50,64"]
    assert run(_load_tool("export_model").main, args) == 2
    err = capsys.readouterr().err
    assert "H=50" in err and "multiples of 4" in err


def test_fixed_shape_export(exported, tmp_path):
    model, _, _ = exported["hinet"]
    folder = str(tmp_path / "fixed")
    info = export_model(model, folder, input_shape=[1, 3, 64, 64])
    assert read_deploy_info(folder).fixed_shape == [1, 3, 64, 64]
    backend = PaddleInferenceBackend(folder, info, enable_mkldnn=False)
    x = np.random.default_rng(2).random((1, 3, 64, 64), dtype=np.float32)
    assert max_rel_diff(backend.run(x), DygraphBackend(model).run(x)) < 1e-5
    # a runner feeds a fixed-shape program 64x64 tiles only, whatever the image size
    seen = []

    class Spy:
        def run(self, t):
            seen.append(t.shape)
            return backend.run(t)

    img = np.random.default_rng(3).random((70, 150, 3), dtype=np.float32)
    out = ImageRestorer(Spy(), read_deploy_info(folder))(img)
    assert out.shape == (70, 150, 3) and out.dtype == np.uint8
    assert set(seen) == {(1, 3, 64, 64)}
    with pytest.raises(ExportError, match="W=40"):
        export_model(model, str(tmp_path / "bad"), input_shape=[1, 3, 64, 40])


def test_export_onnx_fails_on_corrupt_params(exported, tmp_path, capsys):
    _, folder, _ = exported["hinet"]
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "model.onnx").unlink(missing_ok=True)
    params = broken / "inference.pdiparams"
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 3])  # truncated weights
    from ppir.cli import run

    assert run(_load_tool("export_onnx").main, ["--model_dir", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot load the program" in err[0] and str(broken) in err[0]
    assert not (broken / "model.onnx").exists()  # refused before conversion (paddle2onnx would not notice)
    # paddle2onnx itself failing (here: no program file) is one line too
    (broken / "inference.json").write_text("{ not a program")
    (broken / "inference.pdiparams").write_bytes(b"")
    with pytest.raises(ExportError, match="paddle2onnx failed"):
        run_paddle2onnx(str(broken), str(broken / "model.onnx"))


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(REPO, "tools", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tamper(onnx_in, onnx_out):
    """Scale the last convolution's weights by 10%: a conversion that went silently wrong."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(onnx_in)
    last_conv = [n for n in m.graph.node if n.op_type == "Conv"][-1]
    tensors = {t.name: t for t in m.graph.initializer}  # paddle2onnx stores weights as Constant nodes
    tensors.update({n.output[0]: a.t for n in m.graph.node if n.op_type == "Constant"
                    for a in n.attribute if a.name == "value"})
    weight = tensors[last_conv.input[1]]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.1, weight.name))
    onnx.save(m, onnx_out)


def test_export_onnx_rejects_a_mismatch(exported, tmp_path, monkeypatch, capsys):
    _, folder, _ = exported["hinet"]
    good = os.path.join(folder, "model.onnx")
    if not os.path.exists(good):
        run_paddle2onnx(folder, good, in_process=True)
    work = tmp_path / "m"
    shutil.copytree(folder, work)
    _tamper(good, str(work / "model.onnx"))
    tool = _load_tool("export_onnx")
    from ppir.cli import run

    # an existing file that disagrees: --check_only fails with one line
    assert run(tool.main, ["--model_dir", str(work), "--check_only"]) == 2
    assert "disagrees with the Paddle program" in capsys.readouterr().err
    # a conversion whose result disagrees: the command fails and the file is set aside
    import ppir.export as export_module

    monkeypatch.setattr(export_module, "run_paddle2onnx",
                        lambda model_dir, save_file, *a, **k: _tamper(good, save_file))
    before = (work / "model.onnx").read_bytes()
    assert run(tool.main, ["--model_dir", str(work)]) == 2
    err = capsys.readouterr().err
    assert "disagrees" in err and "rejected" in err and f"{work / 'model.onnx'} is unchanged" in err
    assert ".tmp" not in err  # the message names the file, not its temporary
    # the rejected model is set aside; the file the user had is replaced only by a model that passed the check
    assert (work / "model.onnx.rejected").exists() and (work / "model.onnx").read_bytes() == before


def test_read_deploy_info_errors(tmp_path):
    with pytest.raises(ExportError, match="inference.yml: no such file"):
        read_deploy_info(str(tmp_path))
    (tmp_path / "inference.yml").write_text("model: {name: X}\n")
    with pytest.raises(ExportError, match="malformed"):
        read_deploy_info(str(tmp_path))
    assert DeployInfo("X", input_shape=[2, 3, 32, 32]).fixed_shape == [2, 3, 32, 32]

"""`ppir.infer.backend_registry`: the one list of backend kinds, each kind's options, and the tools that read it."""
import dataclasses
import importlib
import os
import subprocess
import sys

import pytest

from ppir.infer import backend_registry as registry
from ppir.errors import ConfigError
from ppir.infer.backend_registry import BackendError, OnnxRuntimeOptions, PaddleOptions

from conftest import REPO


def test_every_kind_has_a_builder_and_frozen_options():
    for kind in registry.KINDS:
        module, _, function = kind.builder.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), kind.builder
        assert dataclasses.is_dataclass(kind.options) and kind.options.__dataclass_params__.frozen
        assert kind.offered and set(kind.offered) <= {registry.NETWORK, registry.EXPORT, registry.VACC}
    assert len(registry.names()) == len(set(registry.names()))


def test_options_from_a_dict_refuse_unknown_keys():
    assert registry.options_for("paddle", {"threads": 2}) == PaddleOptions(threads=2)
    assert registry.options_for("onnxruntime", None) == OnnxRuntimeOptions()
    given = OnnxRuntimeOptions(model_file="m.onnx")
    assert registry.options_for("onnxruntime", given) is given
    with pytest.raises(BackendError, match=r"^backend onnxruntime has no option enable_mkldnn, params_file "
                                           r"\(it takes use_gpu, threads, "):
        registry.options_for("onnxruntime", {"enable_mkldnn": True, "params_file": "x", "threads": 1})
    with pytest.raises(BackendError, match="options must be a VaccOptions or a dict, got PaddleOptions"):
        registry.options_for("vacc", PaddleOptions())
    with pytest.raises(BackendError, match="unknown backend 'tflite'; choose from auto, dygraph, paddle"):
        registry.options_for("tflite", {})


def test_make_backend_checks_options_before_building(tmp_path):
    from ppir.infer.backends import make_backend

    with pytest.raises(BackendError, match="backend dygraph has no option precision"):
        make_backend("dygraph", object(), options={"precision": "fp16"})


def test_tools_offer_the_registry_names():
    """The val.backend check and every --backend (predict/eval, the server, the VACC runner) offer what the
    registry lists for their role, so a new kind appears in each tool its `offered` names."""
    from ppir.sections import ValOptions

    with pytest.raises(ConfigError, match=r"val.backend must be one of auto, dygraph, paddle, onnxruntime, got 'x'"):
        ValOptions(backend="x").check()
    for command, role in (("predict", registry.NETWORK), ("serve", registry.EXPORT), ("vacc-infer", registry.VACC)):
        r = subprocess.run([sys.executable, "-m", "ppir", command, "--backend", "tflite"], capture_output=True,
                           text=True, cwd=REPO, timeout=120)
        offered = ", ".join(repr(n) for n in registry.names(role))
        assert r.returncode == 2 and f"invalid choice: 'tflite' (choose from {offered})" in r.stderr, r.stderr


def test_the_docs_list_the_registry_kinds():
    """docs/architecture.md names the kinds in one line; it must be the registry's list, in its order."""
    with open(os.path.join(REPO, "docs", "architecture.md"), encoding="utf-8") as f:
        line = next(t for t in f if t.strip().startswith("Kinds: "))
    assert line.strip().split("Kinds: ")[1].split(" (")[0] == ", ".join(registry.names())

"""The `ppir` command (ppir/__main__.py, ppir/commands/) and the rules every command-line parser follows.

The installed command (a wheel in a fresh venv, run from outside the checkout) is tests/smoke_installed.sh,
which .ci/run calls.
"""
import argparse
import ast
import collections
import os
import subprocess
import sys
from unittest import mock

import pytest

from conftest import REPO
from ppir.cli import both_spellings
from ppir.commands import COMMANDS, load

DEPLOYED = ("infer", "infer_onnx", "serve", "client", "vacc_infer", "vacc_build_config", "vacc_calib_set")
SCRIPTS = {  # the scripts kept for TIPC, the README and users: each is a thin wrapper of one command
    **{f"tools/{module}.py": name for name, (module, _) in COMMANDS.items() if module not in DEPLOYED},
    "deploy/inference_python/infer.py": "infer", "deploy/onnxruntime/infer.py": "infer-onnx",
    "deploy/serving/server.py": "serve", "deploy/serving/client.py": "client", "deploy/vacc/infer.py": "vacc-infer",
    "deploy/vacc/build_config.py": "vacc-build-config", "deploy/vacc/make_calib_set.py": "vacc-calib-set",
}


def ppir(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "ppir", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=dict(os.environ, PYTHONPATH=REPO))


def test_help_lists_every_command_with_one_line(tmp_path):
    r = ppir("--help", cwd=tmp_path)  # any folder
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)
    for name in ("train", "eval", "predict", "export", "export-onnx", "convert", "serve", "quickstart",
                 "model-info", "quant-report"):
        assert name in COMMANDS
    r = ppir(cwd=tmp_path)
    assert r.returncode == 2 and "usage: ppir <command>" in r.stderr


def test_unknown_command_is_one_line_and_exit_2():
    from ppir.__main__ import main

    r = ppir("trian")
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: unknown command 'trian' (did you mean 'train'?); `ppir --help` lists them")
    assert main(["--version"]) == 0


def test_a_command_runs_in_process_with_its_own_name_and_errors(capsys):
    from ppir.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["model-info", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ppir model-info ") and "--markdown" in out  # model_info's own help
    # a PPIRError becomes one line and exit 2, as with tools/model_info.py
    assert main(["model-info", "-c", os.path.join(REPO, "configs/demo/mirnet_synthetic.yml"), "--proxy", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --proxy is 'auto' or an integer >= 1, got '0'"


def test_command_and_script_give_the_same_result(tmp_path):
    """`ppir make-synthetic-data` from another folder writes exactly what tools/make_synthetic_data.py writes."""
    args = ["--degradation", "rain", "--num", "2", "--size", "40x48", "--seed", "3"]
    r1 = ppir("make-synthetic-data", *args, "--out", tmp_path / "a", cwd=tmp_path)
    r2 = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_synthetic_data.py"), *args, "--out",
                         str(tmp_path / "b")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    for sub in ("lq", "gt"):
        names = sorted(os.listdir(tmp_path / "a" / sub))
        assert len(names) == 2 and names == sorted(os.listdir(tmp_path / "b" / sub))
        for n in names:
            assert (tmp_path / "a" / sub / n).read_bytes() == (tmp_path / "b" / sub / n).read_bytes()


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scripts_are_thin_wrappers(script):
    """tools/*.py and deploy/*/*.py only import their command's main and run it: no definitions, one sys.path
    line, and the module they import is the command `ppir <name>` runs."""
    tree = ast.parse(open(os.path.join(REPO, script), encoding="utf-8").read())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While))]
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert f"ppir.commands.{COMMANDS[SCRIPTS[script]][0]}" in imported
    assert sum("sys.path" in ast.unparse(n) for n in tree.body) == 1


# --------------------------------------------------------------------------------------- flag rules
class _Parsed(Exception):
    pass


def caught_parser(main):
    """The ArgumentParser `main([])` builds, caught when it starts parsing."""
    caught = {}

    def grab(parser, *args, **kwargs):
        caught["parser"] = parser
        raise _Parsed

    with mock.patch.object(argparse.ArgumentParser, "parse_args", grab), pytest.raises(_Parsed):
        main([])
    return caught["parser"]


def parser_of(name):
    """The ArgumentParser command `name` builds."""
    return caught_parser(load(name).main)


BENCHMARKS = ("bench_batch", "bench_infer", "bench_pytorch", "bench_serving", "bench_train")


def benchmark_parser(name):
    """The ArgumentParser of benchmarks/<name>.py (imported by path: the folder is not a package)."""
    import importlib.util

    folder = os.path.join(REPO, "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)  # their shared helpers: benchmarks/common.py
    spec = importlib.util.spec_from_file_location(f"ppir_benchmark_{name}", os.path.join(folder, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return caught_parser(module.main)


def all_parsers():
    return {**{name: parser_of(name) for name in COMMANDS},
            **{f"benchmarks/{name}.py": benchmark_parser(name) for name in BENCHMARKS}}


# Different attribute names, one meaning: the weights a run starts from (TIPC passes it to train and eval alike).
SAME_MEANING = {"--pretrained": {"pretrained", "weights"}}


def form(action):
    """switch (no value), BOOL (optional True/False) or value."""
    if action.nargs == 0:
        return "switch"
    if action.nargs == "?" and action.const is True:
        return "BOOL"
    return "value"


def test_every_cli_spells_its_flags_one_way():
    """One spelling per flag across tools: (1) a long option of several words takes --a_b and --a-b alike;
    (2) an option string means the same thing in every tool (the same attribute); (3) an option several tools
    share takes the same form in all of them (`--use_gpu` alone and `--use_gpu True` wherever there is one)."""
    meaning = collections.defaultdict(dict)
    forms = collections.defaultdict(dict)
    problems = []
    for tool, parser in all_parsers().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            missing = set(both_spellings(action.option_strings)) - set(action.option_strings)
            if missing:
                problems.append(f"{tool}: {'/'.join(action.option_strings)} lacks {sorted(missing)}")
            for option in action.option_strings:
                meaning[option][tool] = action.dest
                forms[option.lstrip("-").replace("-", "_")][tool] = form(action)
    problems += [f"{option} means different things: {tools}" for option, tools in meaning.items()
                 if len(set(tools.values()) - SAME_MEANING.get(option, set())) > 1]
    problems += [f"--{name} takes different forms: {tools}" for name, tools in forms.items()
                 if len(set(tools.values())) > 1]
    assert not problems, "\n".join(problems)
    # the flags named in the issue: the GPU flag is the same in the runners and the server
    assert forms["use_gpu"] == {"infer": "BOOL", "infer-onnx": "BOOL", "serve": "BOOL"}


@pytest.mark.parametrize("name, settings_class", [
    ("infer", "ppir.infer.runner:RunnerSettings"), ("infer-onnx", "ppir.infer.runner:RunnerSettings"),
    ("serve", "ppir.serving.server:ServerSettings"), ("vacc-infer", "ppir.vacc.runner:VaccSettings"),
    ("vacc-build-config", "ppir.vacc.build:BuildSettings"),
])
def test_every_flag_reaches_the_librarys_settings(name, settings_class):
    """The commands hand the library a settings dataclass (`ppir.cli.settings_from`), which takes the flags by
    name: a flag without a field of that name would be dropped silently, and a field's default that differs from
    its flag's would make library callers and command-line users get different runs."""
    import dataclasses
    import importlib

    module, _, cls = settings_class.partition(":")
    fields = {f.name: f for f in dataclasses.fields(getattr(importlib.import_module(module), cls))}
    for action in parser_of(name)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.dest in fields, f"{name}: {action.option_strings[0]} has no field in {cls}"
        field = fields[action.dest]
        if field.default is not dataclasses.MISSING:
            assert field.default == action.default, (action.dest, field.default, action.default)
        elif field.default_factory is not dataclasses.MISSING:
            assert field.default_factory() == action.default, (action.dest, action.default)
        else:
            assert action.required, f"{cls}.{action.dest} is required, {action.option_strings[0]} is not"


def test_the_rules_catch_a_second_spelling():
    """The check above can fail: a parser of plain argparse with one spelling, a flag with two meanings."""
    plain = argparse.ArgumentParser()
    action = plain.add_argument("--save_dir")
    assert set(both_spellings(action.option_strings)) - set(action.option_strings) == {"--save-dir"}
    assert both_spellings(["--model_dir", "-m"]) == ["--model_dir", "--model-dir", "-m"]
    assert form(plain.add_argument("--use_gpu", action="store_true")) != form(
        parser_of("infer")._option_string_actions["--use_gpu"])


def test_old_spellings_still_work():
    """What TIPC configs, the README and the docs type keeps parsing, now also in the other tools."""
    serve = parser_of("serve")
    args = serve.parse_args(["--model_dir", "m", "--use_gpu", "True", "--enable_mkldnn"])
    assert args.use_gpu is True and args.enable_mkldnn is True
    assert serve.parse_args(["--model-dir", "m", "--use-gpu", "False"]).use_gpu is False
    infer = parser_of("infer")
    assert infer.parse_args(["--model_dir", "m", "--image_dir", "i", "--use_gpu"]).use_gpu is True
    predict = parser_of("predict")
    base = ["-c", "x.yml", "--weights", "w", "--input", "i", "--output", "o"]
    assert predict.parse_args(base + ["--overwrite"]).overwrite is True
    assert predict.parse_args(base + ["--overwrite", "False"]).overwrite is False
    quant = parser_of("quant-report")
    assert quant.parse_args(["--model-dir", "m", "--calib-num", "4"]).calib_num == 4


def test_a_server_started_by_hand_puts_its_pixel_limit_in_force(tmp_path, tiny_hinet_export):
    """OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS when it is loaded: `ppir serve` started without the variable sets
    it before anything loads OpenCV (no restart of the process), so the limit is in force."""
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    env["PYTHONPATH"] = REPO
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ppir", "serve", "--model_dir", tiny_hinet_export,
                                 "--port", "0", "--max-pixels", "1000000", "--predictor-process", "no"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        deadline = time.time() + 240
        while "listening on http://" not in log.read_text() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        text = log.read_text()
        assert "listening on http://" in text, text[-3000:]
        assert f"(pid {proc.pid})" in text  # the process that was started serves
        assert "OpenCV pixel limit in force: 1000000" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)

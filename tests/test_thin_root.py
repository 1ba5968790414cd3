"""`import ppir` loads no Paddle (nor OpenCV), and Paddle loads only through ppir._paddle, which sets the
environment Paddle reads on import (OMP_NUM_THREADS: `import paddle` pins it to 1 when unset)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP_MODULE = "_paddle"


def run_python(code: str, env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def _is_paddle_import(node) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name == "paddle" or a.name.startswith("paddle.") for a in node.names)
    return isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "paddle"


def _is_setup_import(node) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").endswith(SETUP_MODULE) or any(a.name == SETUP_MODULE for a in node.names)
    return isinstance(node, ast.Import) and any(a.name.endswith("." + SETUP_MODULE) for a in node.names)


def unguarded_paddle_imports(package_dir: str) -> list[str]:
    """'file:line' of every paddle import not preceded by an import of the set-up module, either at module level
    (before it, so it ran first) or earlier in the same function."""
    found = []
    for folder, _, files in os.walk(package_dir):
        for f in sorted(files):
            if not f.endswith(".py") or f == SETUP_MODULE + ".py":
                continue
            path = os.path.join(folder, f)
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read(), path)
            parent = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}

            def scope(node):
                while node in parent:
                    node = parent[node]
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                        return node
                return tree

            setups = [(scope(n), n.lineno) for n in ast.walk(tree) if _is_setup_import(n)]
            for n in ast.walk(tree):
                if _is_paddle_import(n) and not any((s is tree or s is scope(n)) and line < n.lineno
                                                    for s, line in setups):
                    found.append(f"{os.path.relpath(path, ROOT)}:{n.lineno}")
    return found


def test_the_checker_finds_a_paddle_import_without_the_setup(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "ok.py").write_text("from . import _paddle\nimport paddle\n\ndef f():\n    import paddle.nn\n")
    (pkg / "late.py").write_text("import paddle.nn as nn\nfrom . import _paddle\n")
    (pkg / "infn.py").write_text("def f():\n    from .. import _paddle\n    import paddle\n\n"
                                 "def g():\n    from paddle import nn\n")  # g's scope has no set-up
    assert sorted(p.rsplit(os.sep, 1)[-1] for p in unguarded_paddle_imports(str(pkg))) == ["infn.py:6",
                                                                                          "late.py:1"]


def test_every_paddle_import_in_ppir_goes_through_the_setup_module():
    assert unguarded_paddle_imports(os.path.join(ROOT, "ppir")) == []


def test_import_ppir_loads_no_paddle_and_no_opencv():
    r = run_python("import sys, ppir; print(sorted(m for m in ('paddle', 'cv2', 'numpy', 'yaml') if m in sys.modules))"
                   "; print(ppir.__version__, len(dir(ppir)))")
    assert r.returncode == 0, r.stderr
    loaded, version = r.stdout.splitlines()
    assert loaded == "[]"
    assert version.startswith("0.")


def test_public_names_resolve_on_first_use():
    r = run_python("import sys, ppir\n"
                   "missing = [n for n in ppir.__all__ if n not in dir(ppir)]\n"
                   "values = [getattr(ppir, n) for n in ppir.__all__]\n"
                   "print(missing, 'paddle' in sys.modules, ppir.MODELS.names())\n"
                   "try:\n    ppir.no_such_name\nexcept AttributeError as e:\n    print(e)\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "[] True ['HINet', 'MIMOUNet', 'MIMOUNetPlus', 'MIRNet']"
    assert lines[1] == "module 'ppir' has no attribute 'no_such_name'"


def test_paddle_loads_with_every_core_and_without_the_data_parallel_warning():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    r = run_python("import os, sys, ppir.models; print('paddle' in sys.modules, os.environ['OMP_NUM_THREADS'])",
                   env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", str(os.cpu_count() or 1)]
    assert "OMP_NUM_THREADS" not in r.stderr
    chosen = run_python("import os, ppir.weights; print(os.environ['OMP_NUM_THREADS'])", dict(env, OMP_NUM_THREADS="1"))
    assert chosen.stdout.split() == ["1"]  # the user's own choice is kept


def test_serve_sets_the_opencv_limit_in_process_before_cv2_loads():
    code = ("import os, sys\n"
            "from ppir.commands import load\n"
            "serve = load('serve')\n"
            "before = 'cv2' in sys.modules\n"
            "serve.prepare(['--model_dir', 'm', '--max-pixels', '12345'])\n"
            "import cv2\n"
            "print(before, os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])\n"
            "from ppir.serving.protocol import opencv_pixel_limit_active\n"
            "print(opencv_pixel_limit_active(12345))\n"
            "try:\n    serve.prepare(['--max-pixels', '999'])\nexcept Exception as e:\n"
            "    print(type(e).__name__, e)\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    r = run_python(code, env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "False 12345"  # nothing had loaded OpenCV; the limit was set in this process
    assert lines[1] == "True"  # and OpenCV enforces it
    assert lines[2].startswith("ConfigError OpenCV was loaded before the server could set its pixel limit")


def test_the_serving_client_script_needs_neither_paddle_nor_numpy():
    r = run_python("import runpy, sys\nsys.argv = ['client.py', '--help']\n"
                   "try:\n    runpy.run_path('deploy/serving/client.py', run_name='__main__')\nexcept SystemExit:\n"
                   "    pass\nprint(sorted(m for m in ('paddle', 'numpy', 'cv2') if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert "--url" in r.stdout and r.stdout.splitlines()[-1] == "[]"

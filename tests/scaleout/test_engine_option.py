"""--engine ray without a cluster: Ray stays out of `import ppir`, and without Ray the option is one line saying how
to install it (exit code 2), before any work."""
import os
import subprocess
import sys

import pytest

from conftest import REPO


def run(*args, env_path=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*env_path, REPO]))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_import_ppir_does_not_import_ray():
    r = run("-c", "import sys, ppir, ppir.infer.runner, ppir.serving.server, ppir.commands.predict, "
                  "ppir.scaleout.batch, ppir.scaleout.serving; print('ray' in sys.modules)")
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("command", [
    ["infer", "--model_dir", "m", "--image_dir", "i"],
    ["infer-onnx", "--model_dir", "m", "--image_dir", "i"],
    ["predict", "-c", "c.yml", "--weights", "w", "--input", "i", "--output", "o"],
    ["serve", "--model_dir", "m"],
])
def test_engine_ray_without_ray_is_one_line_and_exit_2(tmp_path, command):
    fake = tmp_path / "ray"  # a `ray` that cannot be imported, first on the path
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    r = run("-m", "ppir", *command, "--engine", "ray", env_path=[str(tmp_path)])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --engine ray needs Ray, which is not installed: pip install 'ppir[ray]' (or pip install -r "
        "requirements-ray.txt)"]


def serve_args(*argv):
    from ppir.commands.serve import settings

    return settings(["--model_dir", "m", "--engine", "ray", *argv])


def test_serve_options_map_to_ray_serve_options():
    from ppir.errors import ConfigError
    from ppir.scaleout.serving import deployment_options

    fixed = deployment_options(serve_args("--replicas", "3", "--max-ongoing-requests", "6", "--cpu-threads", "2"))
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["max_ongoing_requests"] == 6 and fixed["ray_actor_options"] == {"num_cpus": 2}
    scaled = deployment_options(serve_args("--min-replicas", "1", "--max-replicas", "8", "--use-gpu"))
    assert "num_replicas" not in scaled and scaled["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 1}
    assert scaled["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 8, "initial_replicas": 1,
                                            "target_ongoing_requests": 2}
    for bad in (["--min-replicas", "5", "--max-replicas", "2"], ["--replicas", "0"], ["--max-batch-size", "0"]):
        with pytest.raises(ConfigError):
            deployment_options(serve_args(*bad))

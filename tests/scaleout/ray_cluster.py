"""A two-node Ray cluster on this machine, for the Ray tests: `ray start --head` and a second `ray start
--address=...` (two raylets = two nodes), 1 CPU each, a small object store, no dashboard, no usage statistics.

Meant to run inside a fresh network namespace with only loopback (and a PID namespace, so that every process
the cluster starts dies with it): test_ray.py starts ray_scenarios.py through `unshare`. Every process of the
cluster carries TOKEN_ENV in its environment, so the test can prove that none is left afterwards.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

TOKEN_ENV = "PPIR_RAY_TEST_TOKEN"
HEAD = "127.0.0.1:6379"


def cluster_env(repo: str, token: str) -> dict:
    # no token authentication: the cluster lives in a namespace that only has loopback, and a token shared through
    # ~/.ray would tie these tests to whatever other Ray runs on the machine
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", PYTHONPATH=repo,
               **{TOKEN_ENV: token})
    env.pop("RAY_ADDRESS", None)
    return env


def ray_cli() -> list[str]:
    """The `ray` command of this interpreter's installation."""
    return [os.path.join(os.path.dirname(sys.executable), "ray")]


def start(temp_dir: str, env: dict, log) -> None:
    """Head node, then a worker node joining it; returns once the cluster has two nodes."""
    common = ["--num-cpus=1", "--object-store-memory=80000000", "--node-ip-address=127.0.0.1",
              "--disable-usage-stats"]
    subprocess.run([*ray_cli(), "start", "--head", "--port=6379", "--include-dashboard=false",
                    f"--temp-dir={temp_dir}", *common], env=env, stdout=log, stderr=log, check=True, timeout=180)
    subprocess.run([*ray_cli(), "start", f"--address={HEAD}", *common], env=env, stdout=log, stderr=log, check=True,
                   timeout=180)
    deadline = time.time() + 120
    while time.time() < deadline:
        r = subprocess.run([sys.executable, "-c", "import ray; ray.init(address='%s', logging_level='ERROR'); "
                            "print(sum(n['Alive'] for n in ray.nodes()))" % HEAD],
                           env=env, capture_output=True, text=True, timeout=120)
        if r.stdout.strip().endswith("2"):
            return
        time.sleep(1)
    raise RuntimeError("the second Ray node did not join")


def processes(pattern: str) -> list[int]:
    """Pids whose command line contains `pattern` (in this PID namespace: the cluster's and ours only)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pattern in cmdline and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def stop_everything() -> None:
    """Kill every other process of this PID namespace (the cluster, servers, jobs): all were started here."""
    me, parent = os.getpid(), os.getppid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) not in (me, parent, 1):
            try:
                os.kill(int(pid), 9)
            except OSError:
                pass

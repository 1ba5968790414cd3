"""--engine ray on a real two-node Ray cluster on this machine (ray_cluster.py), inside a fresh network namespace
that has only loopback (Ray would otherwise bind the host's address; all traffic here goes to 127.0.0.1) and a
PID namespace (every process the cluster starts dies with it, also when a test fails).

One run of ray_scenarios.py (a few minutes on 2 cores) does everything: `ppir infer --engine ray --workers 2`
against `ppir infer`, a batch job with one worker killed with SIGKILL and its rerun, `ppir serve --engine ray
--replicas 2` against `ppir serve` on the abuse cases, and 120 requests from 8 clients with one replica killed.
The tests below check what it recorded.

Needs root (unshare) and Ray: without them the module is skipped, unless PPIR_REQUIRE_RAY=1 (CI sets it in
.ci/run), which turns the skip into a failure so CI cannot pass without running these.
"""
import json
import os
import shutil
import subprocess
import sys
import uuid

import cv2
import numpy as np
import pytest

from conftest import REPO, export_tiny_hinet

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIRED = os.environ.get("PPIR_REQUIRE_RAY") == "1"
TOKEN_ENV = "PPIR_RAY_TEST_TOKEN"


def unavailable() -> str | None:
    """Why the Ray tests cannot run here, or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install -r requirements-ray.txt)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) is missing"
    r = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create network/PID namespaces (needs root): {r.stderr.strip()[:200]}"
    return None


def leftover(token: str) -> list[int]:
    """Pids of processes whose environment carries this run's token (the cluster and everything it started)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"{TOKEN_ENV}={token}".encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def make_images(folder, count, size, seed, extra=()):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = size if isinstance(size, tuple) else (size, size)
        cv2.imwrite(os.path.join(folder, f"img{i:02d}.png"), rng.integers(0, 255, (h + 8 * (i % 2), w, 3), np.uint8))
    for name, data in extra:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    why = unavailable()
    if why:
        if REQUIRED:
            pytest.fail(f"PPIR_REQUIRE_RAY=1 but the Ray tests cannot run: {why}")
        pytest.skip(why)
    work = str(tmp_path_factory.mktemp("ray"))
    model = export_tiny_hinet(os.path.join(work, "model"))
    data = {k: os.path.join(work, k) for k in ("mixed", "gt", "many")}
    jpg = cv2.imencode(".jpg", np.full((32, 48, 3), 90, np.uint8))[1].tobytes()
    # colliding stems (a.png, a.jpg), an unreadable file, images of two sizes; ground truth for all but a.jpg
    make_images(data["mixed"], 5, (40, 56), 0, [("a.jpg", jpg), ("bad.png", b"not an image")])
    cv2.imwrite(os.path.join(data["mixed"], "a.png"), np.full((32, 48, 3), 60, np.uint8))
    make_images(data["gt"], 5, (40, 56), 1)
    cv2.imwrite(os.path.join(data["gt"], "a.png"), np.full((32, 48, 3), 64, np.uint8))
    make_images(data["many"], 24, 256, 2)
    token = uuid.uuid4().hex
    ray_temp = f"/tmp/ppir-ray-{token[:8]}"  # short: Ray's socket paths must fit in 107 bytes
    setup = os.path.join(work, "setup.json")
    with open(setup, "w") as f:
        json.dump({"work": work, "model": model, "data": data, "ray_temp": ray_temp}, f)
    driver = os.path.join(HERE, "ray_scenarios.py")
    env = dict(os.environ, **{TOKEN_ENV: token}, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]))
    cmd = ["unshare", "-n", "-p", "-f", "--kill-child", "--mount-proc", "bash", "-c",
           f"ip link set lo up && exec {sys.executable} {driver} {setup}"]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    finally:
        left = leftover(token)
        shutil.rmtree(ray_temp, ignore_errors=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert r.returncode == 0 and lines, f"driver failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    results = json.loads(lines[-1])
    results["leftover"] = left
    assert "error" not in results, results["error"]
    print(json.dumps(summary(results)))  # shown with pytest -s: what the cluster did, for the record
    return results


def summary(results) -> dict:
    batch, serve = results.get("batch", {}), results.get("serve", {})
    return {"cluster_start_s": results.get("cluster_start_s"), "leftover": results["leftover"],
            "batch_kill": {k: batch.get("kill", {}).get(k) for k in ("rc", "written_at_kill", "total",
                                                                     "workers_seen", "seconds")},
            "batch_seconds": {k: batch.get(k, {}).get("seconds") for k in ("local", "ray", "predict_local",
                                                                          "predict_ray", "rerun")},
            "serve_kill": {k: serve.get("kill", {}).get(k) for k in ("requests", "done", "failures", "replaced",
                                                                     "seconds")},
            "serve_5xx": serve.get("ray_5xx_lines"), "serve_ray_start_s": serve.get("ray_start_s")}


def no_error(part):
    assert "error" not in part, part["error"]
    return part


def test_cluster_lives_on_loopback_only_and_leaves_no_process(seen):
    addresses = [ln.split()[1] for ln in seen["namespace_addresses"].splitlines()]
    assert addresses and set(addresses) == {"lo"}, seen["namespace_addresses"]
    assert seen["leftover"] == []


def test_ray_batch_restores_like_the_local_runner(seen):
    batch = no_error(seen["batch"])
    local, ray = batch["local"], batch["ray"]
    assert local["rc"] == ray["rc"] == 1, (local, ray)  # bad.png failed in both, the rest was restored
    assert ray["stdout"][0].startswith("image: ")
    names = [ln.split(",")[0] for ln in local["stdout"]]
    assert names == [ln.split(",")[0] for ln in ray["stdout"]]
    for a, b in zip(local["stdout"], ray["stdout"]):  # the same PSNR/SSIM lines, to rounding
        va = [float(x.split(": ")[1]) for x in a.split(", ")[1:] if x.startswith(("psnr", "ssim", "avg"))]
        vb = [float(x.split(": ")[1]) for x in b.split(", ")[1:] if x.startswith(("psnr", "ssim", "avg"))]
        assert np.allclose(va, vb, atol=0.01), (a, b)
    assert local["stderr"][-1].replace("mixed_local", "X") == ray["stderr"][-1].replace("mixed_ray", "X")
    assert "restored 7 of 8 image(s)" in ray["stderr"][-1] and "1 failed" in ray["stderr"][-1]
    assert any("bad.png: not a readable image" in ln for ln in ray["stderr"])
    diff = batch["mixed_diff"]
    assert diff["files_a"] == diff["files_b"] and "a.jpg.png" in diff["files_b"] and "a.png" in diff["files_b"]
    assert diff["max_diff"] <= 1


def test_ray_predict_restores_like_the_local_predict(seen):
    batch = no_error(seen["batch"])
    local, ray = batch["predict_local"], batch["predict_ray"]
    assert local["rc"] == ray["rc"] == 0, (local, ray)
    assert local["stdout"][-1].replace("predict_local", "X") == ray["stdout"][-1].replace("predict_ray", "X")
    assert "restored 6 of 6 image(s)" in ray["stdout"][-1]
    diff = batch["predict_diff"]
    assert diff["files_a"] == diff["files_b"] and len(diff["files_b"]) == 6 and diff["max_diff"] <= 1


def test_ray_batch_survives_a_killed_worker_and_resumes(seen):
    batch = no_error(seen["batch"])
    kill = batch["kill"]
    assert kill["killed"] is not None, kill  # a worker was killed while outputs were still missing
    assert kill["written_at_kill"] < kill["total"], kill
    assert kill["rc"] == 0, kill
    assert kill["stdout_tail"][-1].startswith("restored 24 of 24 image(s)"), kill
    diff = batch["kill_diff"]
    assert diff["files_a"] == diff["files_b"] and len(diff["files_b"]) == 24  # each once, no temporaries left
    assert diff["max_diff"] <= 1
    rerun = batch["rerun"]
    assert rerun["rc"] == 0 and any("24 image(s) already had a complete output" in ln for ln in rerun["stderr"])
    assert batch["rerun_unchanged"]


def test_ray_serving_answers_like_the_local_server(seen):
    serve = no_error(seen["serve"])
    local, ray = serve["local"], serve["ray"]
    assert set(local) == set(ray)
    for case in local:
        if case == "health":
            assert local[case][:2] == ray[case][:2]
            continue
        assert local[case] == ray[case], case
    assert local["malformed_json"][0] == 400 and local["tiff_bomb"][0] == 413 and local["oversized_body"][0] == 413
    assert local["paddlex"][0] == 200 and local["pipeline"][0] == 200 and local["missing_field"][0] == 422
    assert serve["restored_max_diff"] <= 1


def test_a_killed_replica_is_replaced_and_clients_see_no_failure(seen):
    serve = no_error(seen["serve"])
    kill = serve["kill"]
    assert kill["killed"] and kill["done"] == kill["requests"] == 120, kill
    assert kill["failures"] == [], kill
    assert kill["replaced"] and kill["replicas_after"] == kill["replicas_before"] == 2, kill
    # the requests the replica held were answered 503 (replica_lost) and retried by the client
    assert any(" 503 " in ln and "lost" in ln for ln in serve["ray_5xx_lines"]), serve["ray_5xx_lines"]

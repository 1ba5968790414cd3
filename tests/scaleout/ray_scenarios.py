"""The Ray scenarios of test_ray.py, run inside a fresh network + PID namespace (only loopback; every process
started here dies with the namespace): `python ray_scenarios.py SETUP.json` starts a two-node cluster
(ray_cluster.py), runs the batch and serving scenarios against it and the local engine, and prints one JSON line
with what it saw; the test asserts on that. Nothing here asserts: a scenario that breaks records its traceback.
"""
from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [REPO, os.path.dirname(HERE)]

from bad_inputs.test_server import open_upload, read_answer, tiff_bomb  # noqa: E402
from ppir.serving import launch  # noqa: E402
from ppir.serving.client import get_json, post_json, post_raw, restore_bytes  # noqa: E402
from scaleout import ray_cluster  # noqa: E402


def ppir(env, *args, timeout=600):
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "ppir", *map(str, args)], env=env, capture_output=True, text=True,
                       timeout=timeout, cwd=REPO)
    return {"rc": r.returncode, "stdout": r.stdout.splitlines(), "stderr": r.stderr.splitlines()[-40:],
            "seconds": round(time.time() - t0, 2)}


def folder_diff(a, b) -> dict:
    """Files of two output folders and the largest pixel difference (in 1/255) over files of the same name."""
    names_a, names_b = sorted(os.listdir(a)), sorted(os.listdir(b))
    worst = 0
    for n in set(names_a) & set(names_b):
        x, y = cv2.imread(os.path.join(a, n)), cv2.imread(os.path.join(b, n))
        worst = max(worst, int(np.abs(x.astype(int) - y.astype(int)).max()) if x.shape == y.shape else 999)
    return {"files_a": names_a, "files_b": names_b, "max_diff": worst}


# ------------------------------------------------------------------------------------------------- batch
def batch_scenarios(setup, env) -> dict:
    out, model, data = setup["work"], setup["model"], setup["data"]
    head = ["--ray-address", ray_cluster.HEAD]
    res = {}
    common = ["--model_dir", model, "--image_dir", data["mixed"], "--gt_dir", data["gt"]]
    res["local"] = ppir(env, "infer", *common, "--save_dir", f"{out}/mixed_local")
    res["ray"] = ppir(env, "infer", *common, "--save_dir", f"{out}/mixed_ray", "--engine", "ray", "--workers", 2,
                      *head)
    res["mixed_diff"] = folder_diff(f"{out}/mixed_local", f"{out}/mixed_ray")

    # predict: a network from its config and weights, no export
    weights = os.path.join(REPO, "tests", "fixtures", "golden", "hinet_wf8_perturbed.npz")
    net = ["-c", os.path.join(REPO, "configs", "hinet_sidd_0.5x.yml"), "-o", "model.wf=8", "--weights", weights,
           "--backend", "dygraph", "--input", data["gt"]]
    res["predict_local"] = ppir(env, "predict", *net, "--output", f"{out}/predict_local")
    res["predict_ray"] = ppir(env, "predict", *net, "--output", f"{out}/predict_ray", "--engine", "ray",
                              "--workers", 2, *head)
    res["predict_diff"] = folder_diff(f"{out}/predict_local", f"{out}/predict_ray")

    # one worker killed with SIGKILL while the job runs
    many = ["--model_dir", model, "--image_dir", data["many"]]
    res["many_local"] = ppir(env, "infer-onnx", *many, "--save_dir", f"{out}/many_local")
    job_args = [*many, "--save_dir", f"{out}/many_ray", "--engine", "ray", "--workers", 2, *head]
    cmd = [sys.executable, "-m", "ppir", "infer-onnx", *map(str, job_args)]
    t0 = time.time()
    with open(f"{out}/kill_job.log", "w") as log:
        job = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    seen_workers, killed, written_at_kill = set(), None, None
    while job.poll() is None and time.time() - t0 < 400:
        workers = ray_cluster.processes("RestoreWorker")
        seen_workers.update(workers)
        written = len(os.listdir(f"{out}/many_ray")) if os.path.isdir(f"{out}/many_ray") else 0
        if killed is None and written >= 2 and workers:
            killed, written_at_kill = workers[0], written
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    job.wait(timeout=30)
    with open(f"{out}/kill_job.log") as f:
        lines = f.read().splitlines()
    res["kill"] = {"rc": job.returncode, "killed": killed, "written_at_kill": written_at_kill,
                   "workers_seen": len(seen_workers), "total": len(os.listdir(data["many"])),
                   "stdout_tail": [ln for ln in lines if ln.startswith(("image:", "restored", "error"))][-5:],
                   "log_tail": lines[-15:], "seconds": round(time.time() - t0, 2)}
    res["kill_diff"] = folder_diff(f"{out}/many_local", f"{out}/many_ray")
    mtimes = {n: os.stat(os.path.join(f"{out}/many_ray", n)).st_mtime_ns for n in os.listdir(f"{out}/many_ray")}
    res["rerun"] = ppir(env, "infer-onnx", *job_args)
    res["rerun_unchanged"] = mtimes == {n: os.stat(os.path.join(f"{out}/many_ray", n)).st_mtime_ns
                                        for n in os.listdir(f"{out}/many_ray")}
    return res


# ----------------------------------------------------------------------------------------------- serving
def answer(status, body):
    """What the two servers must agree on: the status and the body without its (random) logId."""
    try:
        data = json.loads(body)
    except ValueError:
        return [status, body[:200].decode(errors="replace")]
    if isinstance(data, dict):
        data.pop("logId", None)
        if "result" in data and isinstance(data["result"], dict) and "image" in data["result"]:
            data["result"] = {"size": data["result"].get("size"), "image": "<png>"}
        if data.get("value") and data.get("err_no") == 0:
            data["value"] = ["<png>"]
    return [status, data]


def abuse_cases(url) -> dict:
    img = cv2.imencode(".png", np.random.default_rng(1).integers(0, 255, (40, 56, 3), dtype=np.uint8))[1].tobytes()
    b64 = base64.b64encode(img).decode()
    cases = {
        "paddlex": ("/image-restoration", json.dumps({"image": b64}).encode()),
        "pipeline": ("/ocr/prediction", json.dumps({"key": ["image"], "value": [b64]}).encode()),
        "malformed_json": ("/image-restoration", b'{"image": "abc'),
        "nested_json": ("/image-restoration", b"[" * 100000),
        "missing_field": ("/image-restoration", json.dumps({"img": b64}).encode()),
        "bad_base64": ("/image-restoration", b'{"image": "@@@@"}'),
        "not_an_image": ("/image-restoration", json.dumps({"image": base64.b64encode(b"hello").decode()}).encode()),
        "tiff_bomb": ("/image-restoration", json.dumps({"image": base64.b64encode(tiff_bomb(12000, 12000))
                                                       .decode()}).encode()),
    }
    seen = {name: answer(*post_raw(url + path, body)[::2]) for name, (path, body) in cases.items()}
    upload = open_upload(url, 5 << 20, b'{"image": "')  # 5 MB announced, over --max-body-mb 4: refused unread
    try:
        status, _, body = read_answer(upload, timeout=30)
    finally:
        upload.close()
    body.pop("logId", None)
    seen["oversized_body"] = [status, body]
    seen["no_route"] = list(get_json(url + "/nope"))
    seen["no_route"][1].pop("logId", None)
    status, health = get_json(url + "/health")
    seen["health"] = [status, sorted(health.get("result", {})), health.get("errorMsg")]
    seen["restored_png"] = base64.b64encode(restore_bytes(url, img)).decode()
    return seen


def serve_scenarios(setup, env) -> dict:
    out, model = setup["work"], setup["model"]
    options = ["--model_dir", model, "--backend", "onnxruntime", "--port", 0, "--max-pixels", 1000000,
               "--max-body-mb", 4]
    res = {}
    local = launch.start_server(options, f"{out}/serve_local.log", timeout=180, cwd=REPO)
    try:
        res["local"] = abuse_cases(local.url)
    finally:
        local.stop()
    t0 = time.time()
    remote = launch.start_server([*options, "--engine", "ray", "--replicas", 2, "--ray-address", ray_cluster.HEAD],
                                 f"{out}/serve_ray.log", timeout=300, cwd=REPO)
    res["ray_start_s"] = round(time.time() - t0, 2)
    try:
        res["ray"] = abuse_cases(remote.url)
        res["kill"] = kill_a_replica(remote.url)
    finally:
        remote.stop(timeout=60)
        with open(f"{out}/serve_ray.log") as f:
            log = f.read().splitlines()
        res["ray_5xx_lines"] = [ln[ln.find("POST"):][:300] for ln in log if re.search(r" POST \S+ 5\d\d ", ln)][:10]
        res["ray_log_tail"] = log[-10:]
    a = cv2.imdecode(np.frombuffer(base64.b64decode(res["local"].pop("restored_png")), np.uint8), cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(base64.b64decode(res["ray"].pop("restored_png")), np.uint8), cv2.IMREAD_COLOR)
    res["restored_max_diff"] = int(np.abs(a.astype(int) - b.astype(int)).max())
    return res


def kill_a_replica(url, clients=8, per_client=15) -> dict:
    """clients x per_client requests through ppir.serving.client; one replica gets SIGKILL once 20 are done."""
    # large enough that a replica always holds requests while the clients run
    img = cv2.imencode(".png", np.random.default_rng(2).integers(0, 255, (192, 192, 3), dtype=np.uint8))[1].tobytes()
    done, failures, lock = [0], [], threading.Lock()
    before = ray_cluster.processes("ServeReplica")
    killed = []

    def client(_):
        for _ in range(per_client):
            try:
                restore_bytes(url, img, retries=5)
            except Exception as e:  # noqa: BLE001 - recorded: the test expects none
                failures.append(f"{type(e).__name__}: {e}")
            with lock:
                done[0] += 1
                if done[0] == 20 and not killed:
                    killed.append(before[0])
                    os.kill(before[0], signal.SIGKILL)

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        list(ex.map(client, range(clients)))
    seconds = time.time() - t0
    deadline = time.time() + 90
    while time.time() < deadline:  # Serve starts a replacement
        after = ray_cluster.processes("ServeReplica")
        if len(after) == len(before) and not set(after) & set(killed):
            break
        time.sleep(0.5)
    return {"requests": clients * per_client, "done": done[0], "failures": failures[:5], "killed": killed,
            "replicas_before": len(before), "replicas_after": len(after), "replaced": not set(after) & set(killed),
            "seconds": round(seconds, 2)}


def main(setup_path) -> int:
    with open(setup_path) as f:
        setup = json.load(f)
    env = ray_cluster.cluster_env(REPO, os.environ[ray_cluster.TOKEN_ENV])
    results = {"namespace_addresses": subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout}
    try:
        t0 = time.time()
        with open(os.path.join(setup["work"], "cluster.log"), "w") as log:
            ray_cluster.start(setup["ray_temp"], env, log)
        results["cluster_start_s"] = round(time.time() - t0, 2)
        for name, scenario in (("batch", batch_scenarios), ("serve", serve_scenarios)):
            try:
                results[name] = scenario(setup, env)
            except Exception:  # noqa: BLE001 - reported to the test
                results[name] = {"error": traceback.format_exc()[-3000:]}
    except Exception:  # noqa: BLE001
        results["error"] = traceback.format_exc()[-3000:]
    finally:
        ray_cluster.stop_everything()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""The AI Studio tutorial docs/tutorials/quickstart.ipynb, executed as a user runs it: a Jupyter kernel started in
docs/tutorials/ (the notebook has to find the repo root itself), every cell in order, with the short settings
(PPIR_TUTORIAL_ITERS) and its output folder under tmp_path. Checks the results on disk, not only that no cell
raised: the restored images beat the noisy inputs, the server answered with the same image Paddle Inference
wrote, and no server process is left behind.
"""
import os
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import REPO

nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -r requirements-dev.txt)")
import nbformat  # noqa: E402  (a dependency of nbclient)

NOTEBOOK = os.path.join(REPO, "docs", "tutorials", "quickstart.ipynb")
# Training steps in the notebook's smoke-test mode. The checkout ships the demo weights, which the notebook
# fine-tunes: they start far above the noisy input, so a few steps show every cell working (a checkpoint, the
# last step's validation, `best`) and the gains below hold. Only a checkout without them trains from scratch, and
# then needs 40 steps: MIRNet n_feat 16 reaches +1.35 dB over the noisy input on the validation set (30 steps
# +0.3 dB; 20 steps below the input).
SHIPPED_WEIGHTS = os.path.join(REPO, "configs", "demo", "weights", "mirnet_synthetic.pdparams")
ITERS = 4 if os.path.isfile(SHIPPED_WEIGHTS) else 40
MIN_GAIN_DB = 0.3
CELL_TIMEOUT = 600
KERNEL_NAME = "ppir-tutorial-test"
TEST_IMAGES = ("camera_00001.png", "chelsea_00000.png")


def cell_text(cell) -> str:
    """Everything a code cell printed or displayed as text."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/markdown", "") or out["data"].get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append("\n".join(out.get("traceback", [])))
    return "".join(parts)


def processes_mentioning(text: str) -> list:
    """(pid, command line) of the processes whose command line contains `text` (Linux /proc)."""
    found = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmd:
            found.append((int(pid), cmd))
    return found


def test_notebook_is_committed_clean():
    """Stored without outputs, valid nbformat 4, python3 kernelspec: diffs stay readable and nothing stale ships."""
    nb = nbformat.read(NOTEBOOK, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.language_info.name == "python"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"cell {cell.id} was committed with outputs"
    sources = "\n".join(c.source for c in code)
    assert "\n!" not in "\n" + sources and "%%bash" not in sources, "use run(...) (failures stop the notebook), not !cmd"


@pytest.fixture
def kernel_for_this_interpreter(tmp_path, monkeypatch):
    """A kernelspec that runs ipykernel with this very interpreter (ipykernel's own spec, written to a private
    folder on JUPYTER_PATH): a `python3` kernelspec installed elsewhere on the machine may point at another
    Python without ppir's requirements."""
    from ipykernel.kernelspec import write_kernel_spec

    kernels = tmp_path / "jupyter" / "kernels"
    write_kernel_spec(path=str(kernels / KERNEL_NAME))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL_NAME


def test_notebook_executes(tmp_path, monkeypatch, kernel_for_this_interpreter):
    out = tmp_path / "tutorial"
    monkeypatch.setenv("PPIR_TUTORIAL_ITERS", str(ITERS))
    monkeypatch.setenv("PPIR_TUTORIAL_OUTPUT", str(out))
    monkeypatch.setenv("PPIR_TUTORIAL_NO_INSTALL", "1")  # never change a developer's environment from a test
    monkeypatch.delenv("PPIR_ROOT", raising=False)        # the notebook must find the repo by itself
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name=kernel_for_this_interpreter, allow_errors=False,
        resources={"metadata": {"path": os.path.join(REPO, "docs", "tutorials")}})
    start = time.time()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"a notebook cell failed:\n{str(e)[-6000:]}")
    finally:
        leftovers = processes_mentioning(str(out))
        for pid, _ in leftovers:  # only processes of this test: their command lines name its tmp folder
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    print(f"notebook executed in {time.time() - start:.1f} s")
    assert not leftovers, f"the notebook left processes running: {leftovers}"

    code = [c for c in nb.cells if c.cell_type == "code"]
    texts = [cell_text(c) for c in code]
    everything = "\n".join(texts)
    assert f"仓库根目录: {os.path.realpath(REPO)}" in texts[0]
    # CI installs requirements-dev.txt, so the install cell must find every pin and do nothing.
    if os.environ.get("CI"):
        assert "跳过安装" in texts[1], texts[1]
    assert "pip install" not in texts[1]

    # training: `best` exists even though ITERS < train.val_interval (the last step always validates); it
    # fine-tunes the shipped demo weights when the checkout has them, and says which
    assert (out / "train" / "best" / "model.pdparams").is_file()
    log = (out / "train" / "train.log").read_text(encoding="utf-8")
    if os.path.isfile(SHIPPED_WEIGHTS):
        assert "微调随仓库提供的演示权重" in everything and "loaded pretrained weights" in log
    else:
        assert "没有找到演示权重" in everything and "loaded pretrained weights" not in log

    # evaluation: the validation set restored beats its noisy input
    import json

    result = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    assert result["images"] == 8
    assert result["metrics"]["psnr"] > result["input_metrics"]["psnr"] + MIN_GAIN_DB, result
    compares = sorted((out / "eval" / "images").glob("*_compare.png"))
    assert len(compares) == 2
    assert "| 复原结果 |" in everything  # the metrics table was displayed

    # Paddle Inference: every test image restored at its own size, better than its noisy input (scored here
    # with OpenCV, independently of ppir's metric code)
    data, restored = out / "data", out / "restored"
    for name in TEST_IMAGES:
        lq, gt = cv2.imread(str(data / "lq" / name)), cv2.imread(str(data / "gt" / name))
        res = cv2.imread(str(restored / name))
        assert res is not None and res.shape == gt.shape, name
        before, after = cv2.PSNR(lq, gt), cv2.PSNR(res, gt)
        assert after > before + MIN_GAIN_DB, f"{name}: restored {after:.2f} dB, input {before:.2f} dB"
        assert f"image: {name}, psnr:" in everything  # the runner's per-image line was shown
    # the classical filters' table on the same test images, and the margin over the best one
    from ppir.baselines import FILTERS

    assert all(f"| {f.name} | {f.param} " in everything for f in FILTERS)
    assert "复原结果 − 最好的经典滤波器" in everything
    assert "与 infer.py 保存的结果最大差异: 0" in everything  # the Python API gives the script's output

    # serving: HTTP 200 with the image Paddle Inference wrote (same program, same backend), then stopped
    assert "POST /image-restoration -> HTTP 200" in everything
    served = cv2.imread(str(out / "serving" / "camera_00001.png"))
    assert served is not None
    assert np.abs(served.astype(int) - cv2.imread(str(restored / "camera_00001.png")).astype(int)).max() <= 1
    assert "服务已停止" in everything

    # pictures were displayed inline: 2 eval comparisons + 2 inference strips + 1 served strip
    pngs = sum(1 for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert pngs == 5

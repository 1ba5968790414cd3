"""Issue 25 case 4: `quickstart --output` into a folder that already holds files. Refused (one line, exit 2) unless
--overwrite, and --overwrite replaces only what a previous quick start made there (the files its quickstart.json
lists); a user's files stay byte for byte and do not change or break the run."""
import json
import os

import cv2
import numpy as np
import pytest

from bad_input_checks import one_error, snapshot
from test_train_export import tool

from ppir.commands import quickstart  # noqa: E402
from ppir.commands.quickstart_folder import MANIFEST, OutputFolder, read_manifest  # noqa: E402

QS = ["--model", "mimo_unet", "--iters", "1", "--from-scratch"]


def test_a_non_empty_output_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "qs"
    (out / "data" / "lq").mkdir(parents=True)
    (out / "data" / "lq" / "mine.png").write_bytes(b"a user's picture")
    before = snapshot(out)
    code, err = tool(capsys, "quickstart", *QS, "--output", out)
    assert code == 2
    assert one_error(err) == (f"error: --output: {out} already holds files (data/lq/mine.png); choose an empty or "
                              "new folder, or pass --overwrite to replace a previous quick start's outputs there")
    assert snapshot(out) == before


def test_overwrite_refuses_a_folder_no_quick_start_made(tmp_path, capsys):
    out = tmp_path / "qs"
    (out / "eval").mkdir(parents=True)
    (out / "eval" / "metrics.json").write_text("{}")  # a user's, no manifest beside it
    before = snapshot(out)
    code, err = tool(capsys, "quickstart", *QS, "--output", out, "--overwrite")
    assert code == 2
    assert one_error(err) == (f"error: --output: {out} holds files that no quick start made (no readable "
                              f"{MANIFEST}: eval/metrics.json); --overwrite replaces only a quick start's own "
                              "outputs, so choose another folder")
    assert snapshot(out) == before


def test_overwrite_refuses_when_a_users_file_stands_where_the_run_writes(tmp_path, capsys):
    out = tmp_path / "qs"
    (out / "train").mkdir(parents=True)
    (out / "train" / "train.log").write_text("old log")
    (out / "metrics.md").write_text("a user's table, not in the manifest")
    (out / MANIFEST).write_text(json.dumps({"made_by": "ppir quickstart", "files": ["train/train.log"]}))
    before = snapshot(out)
    code, err = tool(capsys, "quickstart", *QS, "--output", out, "--overwrite")
    assert code == 2
    assert one_error(err) == (f"error: --output: {out} holds files that this quick start would write and that no "
                              "quick start made (metrics.md); move them or choose another folder")
    assert snapshot(out) == before  # refused before anything was removed


def test_a_doctored_manifest_cannot_remove_files_outside_the_folder(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    out = tmp_path / "qs"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"made_by": "ppir quickstart",
                                            "files": ["../precious.txt", str(outside), "x.txt"]}))
    (out / "x.txt").write_text("made by the quick start")
    assert read_manifest(str(out)) == {"x.txt"}
    OutputFolder(str(out), "mirnet").prepare(True, set())
    assert outside.read_text() == "keep" and not (out / "x.txt").exists()


def test_an_interrupted_run_records_what_it_made(tmp_path, monkeypatch):
    """The manifest is rewritten when a step is interrupted: a later --overwrite removes that run's files, and
    only those."""
    out = tmp_path / "qs"

    def data_then_interrupt(number, total, title, cmd, **kw):
        if number == 1:
            for sub in ("lq", "gt"):
                (out / "data" / sub).mkdir(parents=True, exist_ok=True)
                (out / "data" / sub / "camera_00000.png").write_bytes(b"png")
            return ""
        raise KeyboardInterrupt

    monkeypatch.setattr(quickstart, "step", data_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        quickstart.main([*QS, "--output", str(out)])
    assert read_manifest(str(out)) == {"data/lq/camera_00000.png", "data/gt/camera_00000.png"}
    (out / "data" / "lq" / "mine.png").write_bytes(b"a user's picture")
    OutputFolder(str(out), "mimo_unet").prepare(True, quickstart.planned_files())
    assert sorted(os.listdir(out)) == ["data", MANIFEST] and os.listdir(out / "data") == ["lq"]
    assert os.listdir(out / "data" / "lq") == ["mine.png"]  # the user's file and its folder stay
    assert read_manifest(str(out)) == set()


def test_overwrite_replaces_only_the_previous_runs_outputs_end_to_end(tmp_path, capfd):
    """Two real one-step quick starts into one folder: the second (--overwrite) replaces the first's outputs,
    keeps a user's image in data/lq/ and a note at the top byte for byte, and neither restores nor scores them."""
    out = tmp_path / "qs"
    assert quickstart.main([*QS, "--output", str(out)]) == 0
    first = read_manifest(str(out))
    assert {"metrics.md", "train/train.log", "eval/metrics.json", "inference/inference.yml"} <= first
    mine = {"data/lq/mine.png": cv2.imencode(".png", np.full((40, 48, 3), 90, np.uint8))[1].tobytes(),
            "notes.txt": b"my notes"}
    for rel, data in mine.items():
        (out / rel).write_bytes(data)
    capfd.readouterr()

    assert quickstart.main([*QS, "--output", str(out), "--overwrite"]) == 0
    printed = capfd.readouterr().out
    assert f"{out / 'data' / 'lq'} also holds files the quick start did not make (mine.png)" in printed
    assert {rel: (out / rel).read_bytes() for rel in mine} == mine
    second = read_manifest(str(out))
    from ppir.commands.quickstart_folder import files_under

    assert files_under(str(out)) == second | set(mine) | {MANIFEST}  # nothing of the first run is left unlisted
    assert not second & set(mine) and {"metrics.md", "train/train.log", "restored/camera_00000.png"} <= second
    assert "mine.png" not in os.listdir(out / "restored")
    log = (out / "train" / "train.log").read_text(encoding="utf-8")
    assert log.count(" training samples, batch ") == 1  # one run's log, not two appended
    table = (out / "metrics.md").read_text(encoding="utf-8")
    assert "| test images, degraded input | 10 |" in table and "| test images, restored (Paddle Inference) | 10 |" \
        in table  # the user's image is not a test image

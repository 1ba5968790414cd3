"""Issue 25 case 7 for the readers not covered by --max-memory: `ppir eval` and the dataset readers (paired folders,
a synthetic dataset's image_dir, so training too) judge every image's header before decoding it, and refuse a
decompression bomb in one line naming the file (ppir/data/image_bound.py)."""
import cv2
import numpy as np
import yaml

from bad_input_checks import one_error
from peak_memory import png
from test_train_export import tiny_config, tool

import ppir  # noqa: E402
from ppir.data.image_bound import DATASET_IMAGE_BUDGET, dataset_image_problem, read_dataset_image  # noqa: E402
from ppir.errors import ImageError  # noqa: E402
from ppir.infer.memory import DEFAULT_BUDGET  # noqa: E402

BOMB = png(20000, 20000)  # 1-byte gray zeros: ~600 KB on disk, 400 M pixels decoded


def test_a_bomb_is_refused_from_its_header_and_a_sidd_photo_is_not(tmp_path):
    bomb, sidd = tmp_path / "bomb.png", tmp_path / "sidd.png"
    bomb.write_bytes(BOMB)
    sidd.write_bytes(png(5328, 3000))  # SIDD's full-size photographs, the largest a supported dataset holds
    assert len(BOMB) < 1 << 20
    assert dataset_image_problem(str(bomb)) == (
        f"{bomb}: its header says 20000x20000 pixels, which need 11.9 GB to read, over the 1.2 GB a dataset image "
        "may take; not decoded")
    assert dataset_image_problem(str(sidd)) is None and DATASET_IMAGE_BUDGET == DEFAULT_BUDGET
    try:
        read_dataset_image(str(bomb))
        raise AssertionError("read")
    except ImageError as e:
        assert str(e) == dataset_image_problem(str(bomb))


def test_a_huge_file_without_a_readable_header_is_refused_by_its_size(tmp_path):
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as f:  # sparse: 5 GB on paper
        f.truncate(5 << 30)
    assert dataset_image_problem(str(huge)) == (f"{huge}: the file is 5.0 GB, over the 1.2 GB a dataset image may "
                                                "take to read; not read")


def _paired_config(tmp_path, lq, gt):
    cfg = yaml.safe_load(tiny_config(tmp_path).read_text())
    cfg["datasets"]["val"] = {"type": "PairedFolderDataset", "lq_dir": str(lq), "gt_dir": str(gt)}
    path = tmp_path / "paired.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_eval_refuses_a_bomb_in_its_dataset_in_one_line(tmp_path, capsys):
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    lq.mkdir(), gt.mkdir()
    ok = np.full((24, 24, 3), 100, np.uint8)
    for folder in (lq, gt):
        cv2.imwrite(str(folder / "a.png"), ok)
    (lq / "b.png").write_bytes(BOMB)
    cv2.imwrite(str(gt / "b.png"), ok)
    cfg = _paired_config(tmp_path, lq, gt)
    weights = tmp_path / "w.pdparams"
    ppir.save_weights(ppir.build_model(ppir.load_config(cfg)), str(weights))
    code, err = tool(capsys, "eval", "-c", cfg, "--weights", weights, "--output", tmp_path / "res")
    line = one_error(err)
    assert code == 2 and line == f"error: {dataset_image_problem(str(lq / 'b.png'))}"
    assert not (tmp_path / "res").exists() or "metrics.json" not in str(list((tmp_path / "res").iterdir()))


def test_a_synthetic_datasets_image_dir_bomb_is_refused_in_one_line(tmp_path, capsys):
    src = tmp_path / "clean"
    src.mkdir()
    (src / "bomb.png").write_bytes(BOMB)
    code, err = tool(capsys, "make_synthetic_data", "--degradation", "gaussian_noise", "--image-dir", src,
                     "--out", tmp_path / "out", "--num", "1")
    line = one_error(err)
    assert code == 2 and line == f"error: {dataset_image_problem(str(src / 'bomb.png'))}"

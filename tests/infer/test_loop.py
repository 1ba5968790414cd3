"""The one per-image loop (`ppir.infer.loop.restore_items`) with a fake engine: batching by key, the failure and
missing-ground-truth rules every tool shares, strict mode (the evaluator), and the ImageRestorer engine on a
backend that records what it is given (batching, self-ensemble)."""
import numpy as np
import pytest

from ppir.errors import ImageError
from ppir.infer.backends import Backend
from ppir.infer.deploy_info import DeployInfo
from ppir.infer.loop import Item, NotScored, file_items, restore_items
from ppir.infer.restorer import ImageRestorer


class Doubler:
    """An engine that doubles its input; inputs with equal keys (their shape) share a call."""

    images_per_call = 3

    def __init__(self, fail_on=()):
        self.calls, self.fail_on = [], set(fail_on)

    def prepare(self, img, name=None):
        if name == "bad-size":
            raise ValueError("cannot feed this image")
        return img, img.shape

    def run(self, prepared, key):
        self.calls.append(len(prepared))
        if any(float(x.flat[0]) in self.fail_on for x in prepared):
            raise MemoryError("out of memory\nsecond line")
        return [2 * x for x in prepared]

    def finish(self, y, img):
        return y


def item(name, value, shape=(4, 4, 3), gt=None, **kw):
    img = np.full(shape, value, np.float32)
    return Item(name, name, load=lambda: img, gt=gt, **kw)


def test_batches_failures_and_unscored_are_counted():
    errors, reported = [], []

    def unreadable():
        raise ImageError("c.png: not a readable image")

    def gt_of(value):
        return lambda: np.full((4, 4, 3), value, np.float32)

    def no_gt():
        raise NotScored("no ground truth named like it in gt/")

    def score(it, restored, gt):
        return {"diff": float(np.abs(restored - gt).max())}

    items = [item("a", 1, gt=gt_of(2)), item("b", 2, gt=no_gt), Item("c", "c.png", load=unreadable),
             item("d", 3, shape=(8, 4, 3)), item("bad-size", 5), item("e", 7, gt=gt_of(10))]
    engine = Doubler(fail_on={7})
    summary = restore_items(engine, items, score=score, errors=errors.append,
                            report=lambda it, restored, scores, saved: reported.append((it.name, scores)))
    # chunks of 3 are read first, then run: a and b share a call (same key); d and e alone (other key, fails)
    assert engine.calls == [2, 1, 1]
    assert summary.done == 3 and summary.failures == 3 and summary.unscored == ["b"] and summary.problems == 4
    assert summary.scores == [{"diff": 0.0}]
    assert reported == [("a", {"diff": 0.0}), ("b", None), ("d", None)]
    assert errors == ["c.png: not a readable image", "b: not scored: no ground truth named like it in gt/",
                      "bad-size: cannot feed this image", "e: inference failed (MemoryError: out of memory)"]
    assert len(summary.timings.infer) == 3 and summary.shapes == {(4, 4), (8, 4)}


def test_strict_mode_raises_and_save_failures_count(tmp_path):
    with pytest.raises(MemoryError):
        restore_items(Doubler(fail_on={7}), [item("e", 7)], strict=True)
    with pytest.raises(NotScored):
        restore_items(Doubler(), [item("a", 1, gt=lambda: (_ for _ in ()).throw(NotScored("none")))],
                      score=lambda *a: {}, strict=True)
    errors = []
    blocker = tmp_path / "file"
    blocker.write_text("")
    summary = restore_items(Doubler(), [item("a", 0.25, output=str(blocker / "a.png")),
                                        item("b", 0.25, output=str(tmp_path / "b.png"))], errors=errors.append)
    assert summary.done == 1 and summary.failures == 1 and (tmp_path / "b.png").is_file()
    assert len(errors) == 1 and errors[0].startswith(f"{blocker / 'a.png'}: cannot write")


def test_file_items_pair_ground_truth_by_stem(tmp_path):
    import cv2

    (tmp_path / "lq").mkdir()
    (tmp_path / "gt").mkdir()
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(tmp_path / "lq" / name), np.zeros((5, 6, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "gt" / "b.png"), np.full((5, 6, 3), 255, np.uint8))
    files = sorted(str(p) for p in (tmp_path / "lq").iterdir())
    items = file_items(files, str(tmp_path / "gt"), str(tmp_path / "out"), {f: "x.png" for f in files})
    assert [i.name for i in items] == ["a.png", "b.jpg"] and items[0].output == str(tmp_path / "out" / "x.png")
    with pytest.raises(NotScored, match="no ground truth named like it"):
        items[0].gt()
    assert items[1].gt_path == str(tmp_path / "gt" / "b.png") and items[1].gt().dtype == np.uint8
    assert items[1].load().shape == (5, 6, 3)


class Recorder(Backend):
    def __init__(self):
        self.shapes = []

    def run(self, x):
        self.shapes.append(x.shape)
        return x[:, ::-1] * 0.5  # channel order reversed: the output depends on the input's layout


def test_image_restorer_batches_whole_images_and_averages_the_ensemble():
    info = DeployInfo(model_name="M", size_multiple=4, min_size=4)
    rng = np.random.default_rng(0)
    imgs = [rng.random((6, 7, 3), dtype=np.float32) for _ in range(2)] + [rng.random((9, 5, 3), dtype=np.float32)]
    backend = Recorder()
    restorer = ImageRestorer(backend, info, batch_size=2, output="float")
    summary = restore_items(restorer, [Item(str(k), str(k), load=lambda v=v: v) for k, v in enumerate(imgs)])
    assert summary.done == 3 and backend.shapes == [(2, 3, 8, 8), (1, 3, 12, 8)]  # padded to multiples of 4
    ensemble = ImageRestorer(Recorder(), info, self_ensemble=True, output="float")
    assert ensemble.images_per_call == 1
    out = ensemble.restore(imgs[2])
    assert len(ensemble.backend.shapes) == 8 and {s[2:] for s in ensemble.backend.shapes} == {(12, 8), (8, 12)}
    # a network equivariant to flips and rotations: the ensemble equals a single pass
    assert np.allclose(out, ImageRestorer(Recorder(), info, output="float").restore(imgs[2]), atol=1e-6)
    assert out.shape == (9, 5, 3) and ensemble(imgs[2]).dtype == np.uint8


def test_every_engine_satisfies_the_declared_interface():
    """`RestoreEngine` is what restore_items uses; the restorer, the batch pool's kept outputs and this file's
    fake engine satisfy it (attributes and methods), and an object missing `finish` does not."""
    from ppir.infer.loop import RestoreEngine
    from ppir.scaleout.batch import KeptOutputs

    engines = [ImageRestorer(Recorder(), DeployInfo(model_name="M")), KeptOutputs("uint8"), Doubler()]
    assert all(isinstance(e, RestoreEngine) for e in engines)

    class NoFinish:
        images_per_call = 1

        def prepare(self, img, name=None):
            return img, None

        def run(self, prepared, key):
            return prepared

    assert not isinstance(NoFinish(), RestoreEngine)


def test_one_scorer_for_every_tool():
    """`scorer` checks sizes once for the runners, the evaluator and the quantization report: a size mismatch is
    NotScored (an ImageError: one line in a strict run), counted as unscored by a runner."""
    from ppir.errors import ImageError
    from ppir.infer.loop import scorer

    score = scorer(lambda item, restored, gt: {"diff": float(np.abs(restored - gt).max())})
    same = Item("a", "a.png", load=lambda: np.zeros((4, 5, 3)), gt=lambda: np.ones((4, 5, 3)), gt_path="gt/a.png")
    assert score(same, np.zeros((4, 5, 3)), np.ones((4, 5, 3))) == {"diff": 1.0}
    with pytest.raises(ImageError, match=r"^ground truth gt/a.png is 5x4, the image 6x4$") as e:
        score(same, np.zeros((4, 6, 3)), np.ones((4, 5, 3)))
    assert isinstance(e.value, NotScored)
    no_path = Item("0007", "0007", load=lambda: np.zeros((2, 2, 3)), gt=lambda: np.zeros((3, 2, 3)))
    summary = restore_items(Doubler(), [no_path], score=score, errors=(lines := []).append)
    assert summary.unscored == ["0007"] and lines == ["0007: not scored: ground truth 0007 is 2x3, the image 2x2"]
    with pytest.raises(NotScored, match="ground truth 0007 is 2x3"):
        restore_items(Doubler(), [no_path], score=score, strict=True)

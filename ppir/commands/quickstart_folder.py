"""The quick start's --output folder: which files in it are the quick start's own.

A quick start writes MANIFEST (quickstart.json) into --output before its first step and rewrites it after every
step, also when a step fails or is interrupted, listing every file the run has made so far (paths relative to
--output). That list is how a later `quickstart --overwrite` recognises a previous quick start's outputs: it
removes exactly those files (and the folders they leave empty) and nothing else. A folder that holds files and
no manifest was not made by a quick start, so it is refused even with --overwrite; without --overwrite any
non-empty folder is refused. Files a user added (an image in data/lq/, notes) stay where they are; the run
reads and scores only its own test images (`own_test_images`), so such a file cannot change its results, and a
user's file at a path this run would write is refused before anything is removed."""
from __future__ import annotations

import json
import os

from ppir.errors import ConfigError
from ppir.paths import write_text

MANIFEST = "quickstart.json"
_MADE_BY = "ppir quickstart"


def files_under(folder: str) -> set[str]:
    """Every file (and link) under `folder`, as paths relative to it with '/' separators; links not followed."""
    found = set()
    for root, dirs, files in os.walk(folder):
        names = files + [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in names:
            found.add(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return found


def read_manifest(folder: str) -> set[str] | None:
    """The files a previous quick start recorded in `folder`, or None when it holds no (readable) manifest."""
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("made_by") != _MADE_BY or not isinstance(data.get("files"), list):
        return None
    return {p for p in data["files"] if isinstance(p, str) and _inside(p)}


def _inside(rel: str) -> bool:
    """A manifest entry names a path inside the folder (a doctored manifest cannot point elsewhere)."""
    return bool(rel) and not os.path.isabs(rel) and ".." not in rel.split("/") and rel != MANIFEST


def _sample(paths, n: int = 3) -> str:
    paths = sorted(paths)
    return ", ".join(paths[:n]) + (f" and {len(paths) - n} more" if len(paths) > n else "")


class OutputFolder:
    """--output of one quick start: `prepare` before the first step, `record` after each."""

    def __init__(self, path: str, model: str):
        self.path, self.model = path, model
        self.foreign: set[str] = set()  # files that were there before this run and are not a quick start's

    def prepare(self, overwrite: bool, planned: set[str]) -> None:
        """Refuse a non-empty folder (unless `overwrite` and it holds a previous quick start's outputs), remove
        that previous run's files, and start this run's manifest. `planned`: relative paths this run will write,
        refused when a user's file stands there."""
        present = files_under(self.path) if os.path.isdir(self.path) else set()
        if present and not overwrite:
            raise ConfigError(f"--output: {self.path} already holds files ({_sample(present)}); choose an empty or "
                              f"new folder, or pass --overwrite to replace a previous quick start's outputs there")
        ours = read_manifest(self.path) if present else set()
        if ours is None:
            raise ConfigError(f"--output: {self.path} holds files that no quick start made (no readable "
                              f"{MANIFEST}: {_sample(present)}); --overwrite replaces only a quick start's own "
                              "outputs, so choose another folder")
        self.foreign = present - ours - {MANIFEST}
        clash = self.foreign & planned
        if clash:
            raise ConfigError(f"--output: {self.path} holds files that this quick start would write and that no "
                              f"quick start made ({_sample(clash)}); move them or choose another folder")
        self._remove(ours & present)
        self.record()

    def _remove(self, rels: set[str]) -> None:
        emptied = set()
        for rel in sorted(rels):
            path = os.path.join(self.path, *rel.split("/"))
            if os.path.islink(path) or os.path.isfile(path):
                os.remove(path)
                emptied.add(os.path.dirname(path))
        for folder in sorted(emptied, key=len, reverse=True):  # deepest first; a user's file keeps its folder
            while os.path.abspath(folder) != os.path.abspath(self.path) and os.path.isdir(folder) \
                    and not os.listdir(folder):
                os.rmdir(folder)
                folder = os.path.dirname(folder)

    def own(self) -> set[str]:
        """The files this run has made so far: everything in the folder but the user's and the manifest."""
        return files_under(self.path) - self.foreign - {MANIFEST}

    def record(self) -> None:
        """(Re)write the manifest with the files this run has made so far (atomically)."""
        write_text(os.path.join(self.path, MANIFEST), json.dumps(
            {"made_by": _MADE_BY, "model": self.model, "files": sorted(self.own())}, indent=1) + "\n")

    def own_test_images(self, sub: str) -> list[str]:
        """This run's images in `sub` (e.g. 'data/lq'), sorted, as full paths: a user's files there left out."""
        prefix = sub.rstrip("/") + "/"
        return [os.path.join(self.path, *rel.split("/")) for rel in sorted(self.own())
                if rel.startswith(prefix) and "/" not in rel[len(prefix):] and rel.endswith(".png")]

    def foreign_in(self, sub: str) -> list[str]:
        """The user's files in `sub` (e.g. 'data/lq'), as paths relative to it."""
        prefix = sub.rstrip("/") + "/"
        return sorted(rel[len(prefix):] for rel in self.foreign if rel.startswith(prefix))

"""One run per output folder, one training at a time in it.

A folder that already holds a run's results (checkpoints, `latest`, `best`, `latest.pdparams`, `metrics.jsonl`)
is continued with `--resume` or not at all: a fresh run would take over `latest` and `best`, prune the old
checkpoints and mix its records into metrics.jsonl. Refusing (rather than picking a new folder by itself) keeps
`train.output_dir` the one place scripts and TIPC drivers find a run's results.

A training holds an exclusive `flock` on `<output_dir>/.ppir-train.lock` (the file says which pid holds it) from
the start of the loop to its end. The kernel drops the lock when its process dies, however it dies, so a lock
file left by a killed run is recognised as stale and taken over. Where the filesystem has no flock (some network
mounts), the pid written in the file decides: a live pid holds the folder, a dead one is stale.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time

from ..errors import ConfigError
from ..paths import pid_alive
from .checkpoint import CKPT_DIR

LOCK_FILE = ".ppir-train.lock"
RUN_MARKERS = (CKPT_DIR, "latest", "best", "latest.pdparams", "metrics.jsonl")
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def run_markers(output_dir: str) -> list[str]:
    """The results of an earlier run that `output_dir` holds (an empty checkpoints/ folder does not count)."""
    found = []
    for name in RUN_MARKERS:
        path = os.path.join(output_dir, name)
        if name == CKPT_DIR:
            if os.path.isdir(path) and any(n.startswith("iter_") for n in os.listdir(path)):
                found.append(name + "/")
        elif os.path.lexists(path):
            found.append(name)
    return found


def check_new_run(output_dir: str, origin: str = "train.output_dir") -> None:
    """ConfigError (one line, naming the folder and the fix) when `output_dir` already holds a run."""
    found = run_markers(output_dir)
    if found:
        raise ConfigError(f"{origin}: {output_dir} already holds a run ({', '.join(found)}); continue it with "
                          f"--resume, or train into another folder (-o train.output_dir=...)")


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(200).strip()
    except OSError:
        return ""


def _holder_pid(text: str) -> int | None:
    head = text.split()[0] if text.split() else ""
    return int(head) if head.isdigit() and int(head) > 0 else None


def _in_use(output_dir: str, text: str) -> ConfigError:
    pid = _holder_pid(text)
    who = f" (pid {pid}{text[len(str(pid)):].rstrip()})" if pid else ""
    return ConfigError(f"train.output_dir: {output_dir} is in use by another training{who}; wait for it to end, "
                       f"or train into another folder (-o train.output_dir=...)")


class RunLock:
    """The output folder's lock: `check()` only looks (creates nothing); `acquire()` takes it for this process."""

    def __init__(self, output_dir: str):
        self.output_dir = os.path.abspath(output_dir)
        self.path = os.path.join(self.output_dir, LOCK_FILE)
        self.fd: int | None = None

    def check(self) -> None:
        """ConfigError when another live training holds the folder."""
        if self.fd is not None or not os.path.isfile(self.path):
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if not self._try_flock(fd, fcntl.LOCK_SH):
                raise _in_use(self.output_dir, _holder(self.path))
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def acquire(self) -> None:
        if self.fd is not None:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if not self._try_flock(fd, fcntl.LOCK_EX):
                raise _in_use(self.output_dir, _holder(self.path))
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} on {socket.gethostname()}, since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race with a run opening it right now)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def _try_flock(self, fd: int, kind: int) -> bool:
        """Whether the lock was had; without flock support, whether the pid in the file is gone (or ours)."""
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno not in _NO_FLOCK:
                raise
        pid = _holder_pid(_holder(self.path))
        return pid is None or pid == os.getpid() or not pid_alive(pid)

"""Output paths: up-front checks, so a command fails with one line before doing slow work, not with an OSError
traceback after it (they only look, nothing is created; callers wrap the answer in their error kind), and atomic
writes.

Atomic writes go through a temporary file beside the target, named ``.<target name>.ppir-<pid>-<8 hex>.tmp``,
then renamed over the target. The file is created like a plain ``open()`` would (mode 0666 minus the umask).
A process killed mid-write leaves its temporary file behind; `sweep_stale_temps` removes exactly those: the
name must match the pattern *and* the writer's pid must be gone, so neither a user's file that merely looks
alike nor a file another live run is still writing is ever touched.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets


def nearest_existing(path: str) -> str:
    """`path` itself or its closest ancestor that exists (the one a makedirs would have to write into)."""
    current = path
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def output_dir_problem(path: str) -> str | None:
    """Why the folder `path` cannot be created or written into (one line), or None when it can.

    Permissions are judged with os.access, which root passes (root is only stopped by a read-only mount)."""
    path = os.path.abspath(os.fspath(path))
    existing = nearest_existing(path)
    if not os.path.isdir(existing):
        if existing == path:
            return f"{path} is a file, not a folder"
        return f"cannot create the folder {path}: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == path:
            return f"the folder {path} is not writable (permission denied)"
        return f"cannot create the folder {path}: {existing} is not writable (permission denied)"
    return None


def output_file_problem(path: str) -> str | None:
    """Why the file `path` cannot be (re)written, creating its folder if needed (one line), or None."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        return f"{path} is a folder, not a file"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"{path} is not writable (permission denied)"
    problem = output_dir_problem(os.path.dirname(path))
    return f"cannot write {path}: {problem}" if problem else None


# ------------------------------------------------------------------------------------------ atomic writes
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.ppir-(?P<pid>[1-9][0-9]{0,9})-[0-9a-f]{8}\.tmp$")


def _temp_name(target_name: str) -> str:
    return f".{target_name}.ppir-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: the pid exists but belongs to someone else
        return True
    return True


def sweep_stale_temps(folder: str, target_name: str | None = None) -> list[str]:
    """Remove the temporary files that killed ppir writers left in `folder` (all, or those for `target_name`);
    returns the removed paths. Only regular files matching `_TEMP_NAME` whose writer pid is gone are removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:  # no folder yet: nothing to sweep
        return removed
    for name in names:
        m = _TEMP_NAME.match(name)
        if not m or (target_name is not None and m["target"] != target_name):
            continue
        pid = int(m["pid"])
        path = os.path.join(folder, name)
        if pid == os.getpid() or pid_alive(pid) or not os.path.isfile(path) or os.path.islink(path):
            continue
        with contextlib.suppress(OSError):
            os.remove(path)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_target(path: str):
    """Yield a fresh temporary path beside `path` (created empty, mode 0666 minus the umask, like open()); on
    success it is renamed over `path`, on any error or interrupt it is removed. Writes never leave half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, _temp_name(os.path.basename(path)))
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0666 & ~umask, as open() would
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> str:
    """Write a text file (UTF-8) through `atomic_target`: readers see the old file or the whole new one."""
    with atomic_target(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return path

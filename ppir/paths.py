"""Up-front checks of output paths, so a command fails with one line before doing slow work, not with an
OSError traceback after it. They only look (nothing is created); callers wrap the answer in their error kind."""
from __future__ import annotations

import os


def _nearest_existing(path: str) -> str:
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
    existing = _nearest_existing(path)
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

"""Importing Ray and joining a cluster, the same way for every ``--engine ray`` command.

Without ``--ray-address`` a private Ray is started inside the command's process (the laptop case, one command);
with one, the command joins that cluster as a driver. Either way: no usage statistics, no dashboard for a private
Ray, a modest object store (ppir moves images, not data sets), and workers that import this very ppir package.
"""
from __future__ import annotations

import os
import re

from ..child_process import child_env
from ..errors import ConfigError

INSTALL_HINT = "pip install 'ppir[ray]' (or pip install -r requirements-ray.txt)"
LOCAL_OBJECT_STORE = 256 << 20  # bytes; a private Ray's default would take 30% of the machine's memory


def require_ray():
    """The `ray` module; ConfigError (one line, exit 2) saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None, num_cpus: int | None = None):
    """Join the cluster at `address` ("HOST:PORT" of its head, "auto"), or start a private one when it is
    None or empty. Returns the `ray` module; ConfigError when nothing answers at `address`."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = require_ray()
    if ray.is_initialized():
        return ray
    # Workers must import the ppir the driver runs (a checkout used without pip install included); on a cluster
    # whose nodes have ppir installed this adds nothing (child_env leaves an installed package alone).
    path = child_env({}).get("PYTHONPATH")
    runtime_env = {"env_vars": {"PYTHONPATH": path}} if path else None
    options = dict(runtime_env=runtime_env, log_to_driver=True, configure_logging=True, logging_level="WARNING")
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE, **options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ConfigError(f"cannot start or join {where}: {(str(e).strip().splitlines() or [''])[0][:300]}") \
            from None
    return ray


_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (\S.*)$")


def cause_of(*texts) -> str:
    """The user's error inside Ray's reports: the last 'SomeError: message' line of `texts` (exceptions or strings,
    Ray's task and deployment errors carry the remote traceback) that is not one of Ray's own wrappers."""
    found = None
    for text in texts:
        chain, e = [], text
        while isinstance(e, BaseException):
            chain.append(str(e))
            e = e.__cause__ or getattr(e, "cause", None)
        for line in "\n".join(chain if chain else [str(text)]).splitlines():
            m = _ERROR_LINE.match(line)
            if m and not m.group(1).startswith("Ray") and m.group(1) not in ("SystemException", "RuntimeError"):
                found = f"{m.group(1)}: {m.group(2).strip()[:300]}"
    if found:
        return found
    first = [ln.strip() for t in texts for ln in str(t).strip().splitlines() if ln.strip()]
    return first[-1][:300] if first else "unknown error"

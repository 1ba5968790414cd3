"""Start the HTTP server (`ppir serve`) as a child process, wait until it listens, stop it again.

For the tests, benchmarks/bench_serving.py and scripts that need a server for a while. Readiness is the line
the server prints once its socket is bound (``ppir serving: listening on http://HOST:PORT (pid N)``), so
``--port 0`` (any free port) works: the URL is read from that line.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..child_process import child_env, ppir_command
from . import opencv_limit

_READY = "listening on http://"


class ServerStartError(RuntimeError):
    """The server exited, or did not listen in time; the message ends with the tail of its log."""


class ServerProcess:
    def __init__(self, proc: subprocess.Popen, url: str, log_path: str):
        self.proc, self.url, self.log_path = proc, url, log_path

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (uvicorn's graceful shutdown), SIGKILL if it is still there after `timeout` seconds."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_server(server_args, log_path: str, timeout: float = 120.0, cwd: str | None = None,
                 script: str | None = None) -> ServerProcess:
    """Run `ppir serve <server_args>` (this interpreter, this ppir package), or `python <script> <server_args>`
    (e.g. deploy/serving/server.py), with stdout and stderr in `log_path`; return once it listens.

    Raises ServerStartError (after stopping the process) if it exits or does not listen within `timeout` s.
    """
    args = [str(a) for a in server_args]
    cmd = [sys.executable, script, *args] if script else ppir_command("serve", *args)
    # OpenCV's pixel limit goes in the child's environment, so it need not start itself again to set it
    env = opencv_limit.env_for(args, child_env())
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    server = ServerProcess(proc, "", log_path)
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = server.log()
        if _READY in text:
            server.url = "http://" + text.split(_READY, 1)[1].split()[0]
            return server
        if proc.poll() is not None:
            raise ServerStartError(f"the server exited with code {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    server.stop()
    raise ServerStartError(f"the server did not listen within {timeout:g} s (log: {log_path}):\n"
                           f"{server.log()[-3000:]}")

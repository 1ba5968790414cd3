"""The worst small inputs a memory budget still admits, and the peak resident memory of a command run on them.

Shared by tests/bad_inputs/test_memory_peak.py (a small budget, seconds) and benchmarks/bench_memory_bound.py
(the default budgets, real networks). The peak is the kernel's own figure: `ru_maxrss` of the finished process
as a small launcher's wait4 reports it (the process and every descendant it waited for; see LAUNCHER), and, while it runs, the largest `VmHWM`
of it and its descendants in /proc (a server's predictor children are measured before the server stops)."""
from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from ppir.infer.memory import PIPELINE_BYTES_PER_PIXEL

MB = 1 << 20
FILE_LIMIT = 10 * MB  # the "input under 10 MB"


def png(width: int, height: int, depth: int = 8, color: int = 0) -> bytes:
    """A valid PNG of zeros (`color` 0 gray, 2 RGB, 6 RGBA; `depth` 8 or 16): small on disk, big decoded."""
    channels = {0: 1, 2: 3, 6: 4}[color]

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp, row = zlib.compressobj(9), b"\x00" * (1 + width * channels * depth // 8)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def largest_side(budget: int, slack: int = 4 * MB) -> int:
    """The side of the largest square image whose header the budget admits (file bytes + the pipeline's bytes
    per pixel within `budget`), leaving `slack` for the file's own bytes."""
    return int(math.sqrt((budget - slack) / PIPELINE_BYTES_PER_PIXEL))


def worst_inputs(folder: str, budget: int, max_pixels: int = 0, slack: int = 4 * MB) -> dict[str, str]:
    """name -> path of the worst PNGs under 10 MB that `budget` (and a server's `max_pixels`) still admit: the
    largest square 8-bit gray image, the same size as 16-bit RGBA (the largest decoded array per pixel), and a
    strip 64 pixels high with as many pixels (the most tiles). `slack`: budget bytes left for the file and the
    network's smallest tile (the header check admits more than the planner then restores)."""
    side = largest_side(budget, slack)
    if max_pixels:
        side = min(side, math.isqrt(max_pixels))
    pixels = side * side
    strip = max(1, pixels // 64)
    made = {"gray8_square": png(side, side), "rgba16_square": png(side, side, 16, 6), "gray8_strip": png(strip, 64)}
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, data in made.items():
        assert len(data) < FILE_LIMIT, (name, len(data))
        paths[name] = os.path.join(folder, f"{name}.png")
        with open(paths[name], "wb") as f:
            f.write(data)
    return paths


def _tree(pid: int) -> list[int]:
    """pid and its live descendants (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _hwm_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


# Starts the measured command from a small process. Linux carries a process's ru_maxrss over from the process
# that forked it (the forked copy's resident pages count, and exec keeps the figure), so a command started straight
# from a test process holding 2 GB would report at least 2 GB. Forked from this launcher, it starts from the
# launcher's ~10 MB; the launcher reaps it with wait4 and writes its ru_maxrss (it and the descendants it waited
# for) to the file named first.
LAUNCHER = """import os, sys
out, cmd = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


class Watched:
    """A child process whose (and whose descendants') peak RSS is followed while it runs."""

    def __init__(self, cmd: list[str], **popen):
        fd, self.usage_file = tempfile.mkstemp(prefix="ppir_peak_")
        os.close(fd)
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, self.usage_file, *cmd], **popen)
        self.peak = 0

    def poll_peak(self) -> int:
        for pid in _tree(self.proc.pid):
            self.peak = max(self.peak, _hwm_bytes(pid))
        return self.peak

    def finish(self, timeout: float) -> tuple[int, int]:
        """(exit code, peak RSS bytes) once the process ends (killed after `timeout` seconds): the larger of the
        polled VmHWM figures and the ru_maxrss the launcher reports."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status, _ = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                with open(self.usage_file, encoding="ascii") as f:
                    reported = f.read().strip()  # empty when the launcher was killed
                os.remove(self.usage_file)
                self.peak = max(self.peak, int(reported or 0) * 1024)
                return self.proc.returncode, self.peak
            if time.monotonic() > deadline:
                for p in reversed(_tree(self.proc.pid)):  # the command too, not only its launcher
                    try:
                        os.kill(p, 9)
                    except ProcessLookupError:
                        pass
            self.poll_peak()
            time.sleep(0.05)


def run_measured(cmd: list[str], timeout: float = 600, **popen) -> tuple[int, int, str]:
    """(exit code, peak RSS bytes of the process and its descendants, stderr) of `cmd`."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
        w = Watched(cmd, stderr=err, stdout=subprocess.DEVNULL, **popen)
        code, peak = w.finish(timeout)
        err.seek(0)
        return code, peak, err.read()

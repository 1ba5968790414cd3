"""What every bad-input test asserts about a failed command: its `error:` lines (and no traceback), and that the
files around it are byte for byte what they were."""
import os


def error_lines(stderr: str) -> list[str]:
    """The `error: ...` lines a command printed; a traceback fails the test."""
    assert "Traceback" not in stderr, stderr[-2000:]
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def one_error(stderr: str) -> str:
    """The single `error:` line of a failed command."""
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


def snapshot(folder) -> dict:
    """{relative path: bytes} of every file under `folder`: to prove nothing was lost or rewritten."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out

"""`ppir --help`, `ppir -V` and every `ppir <command> --help` answer without importing Paddle (issue 23): the
package root is thin and the commands import the heavy modules inside `main`, after parsing."""
import json
import os
import subprocess
import sys

from ppir.commands import COMMANDS

# Commands whose --help still needs Paddle, and why (none since ppir/vacc/presets.py holds the VACC presets that
# vacc-build-config lists); an entry that no longer imports paddle fails the test below until it is removed.
KNOWN_HEAVY: dict[str, str] = {}

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs every invocation in one fresh process, in order, and records what was loaded after each: a module once
# imported stays in sys.modules, so the first invocation that shows 'paddle' is the one that imported it.
PROBE = """
import contextlib, io, json, sys
from ppir.__main__ import main
from ppir.commands import COMMANDS
report = []
for args in [["--help"], ["-V"]] + [[name, "--help"] for name in COMMANDS if name not in KNOWN_HEAVY]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(args)
        except SystemExit as e:
            code = e.code
    report.append([" ".join(args), code, len(out.getvalue()), "paddle" in sys.modules])
print(json.dumps(report))
"""


def test_help_and_version_load_no_paddle():
    env = dict(os.environ, PYTHONPATH=ROOT)
    probe = f"KNOWN_HEAVY = {sorted(KNOWN_HEAVY)!r}\n" + PROBE
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[-1])
    assert [row[0] for row in report] == ["--help", "-V"] + [f"{name} --help" for name in COMMANDS
                                                             if name not in KNOWN_HEAVY]
    for args, code, printed, paddle_loaded in report:
        assert code == 0 and printed > 0, (args, code, printed)
        assert not paddle_loaded, f"`ppir {args}` imported paddle"


def test_the_known_heavy_helps_still_are():
    """Each KNOWN_HEAVY entry still imports paddle (run alone, in a fresh process); remove the ones that no longer
    do, so the check above covers them."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    for name in KNOWN_HEAVY:
        code = ("import contextlib, io, sys\nfrom ppir.__main__ import main\n"
                f"try:\n    with contextlib.redirect_stdout(io.StringIO()):\n        main([{name!r}, '--help'])\n"
                "except SystemExit:\n    pass\n"
                "print('paddle' in sys.modules)")
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.stdout.split()[-1:] == ["True"], f"`ppir {name} --help` no longer imports paddle: drop it from KNOWN_HEAVY"

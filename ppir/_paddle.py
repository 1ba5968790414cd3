"""The one place ppir lets Paddle load: the process environment Paddle reads at import time is set here first.

Every ppir module that imports paddle imports this module earlier in the same scope
(`from .. import _paddle  # noqa: F401` before `import paddle`); tests/test_import_graph.py checks it.
`import ppir` itself loads no Paddle, so nothing here runs until a module that needs Paddle is imported.
"""
import contextlib
import io
import os
import sys
import warnings

# `import paddle` pins OMP_NUM_THREADS to 1 when it is unset, which halves CPU speed on a 2-core machine;
# use every core unless the user chose otherwise. Paddle then prints a data-parallel warning about it on
# every start, which is swallowed below (anything else paddle prints on import is passed on).
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
warnings.filterwarnings("ignore", message="No ccache found")
_buf = io.StringIO()
with contextlib.redirect_stderr(_buf):
    import paddle  # noqa: E402,F401
for _line in _buf.getvalue().splitlines():
    if "OMP_NUM_THREADS" not in _line:
        print(_line, file=sys.stderr)
del _buf

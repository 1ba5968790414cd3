"""A network added as a file is found with no other edit: ppir/models/__init__.py scans its own package.

The test writes a real module into a copy of the package (not a runtime registration) and builds it in a fresh
process, the way a contributor's new file would be found."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TOYNET = '''
import paddle.nn as nn

from .. import _paddle  # noqa: F401
from ..registry import MODELS


@MODELS.register
class ToyNet(nn.Layer):
    def __init__(self, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2D(3, 3, 3, padding=1)
        self.width = width

    def forward(self, x):
        return x + self.conv(x)
'''


def test_a_network_file_is_found_without_another_edit(tmp_path):
    shutil.copytree(os.path.join(ROOT, "ppir"), tmp_path / "ppir",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "ppir" / "models" / "toynet.py").write_text(TOYNET)
    code = ("import ppir\n"
            "m = ppir.build_model({'type': 'ToyNet', 'width': 6})\n"
            "print(type(m).__module__, m.width, ppir.count_parameters(m))\n"
            "print(ppir.MODELS.names())\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    built, names = r.stdout.splitlines()
    assert built == "ppir.models.toynet 6 84"  # 3x3x3x3 weights + 3 biases
    assert names == "['HINet', 'MIMOUNet', 'MIMOUNetPlus', 'MIRNet', 'ToyNet']"


def test_helpers_are_not_taken_for_networks():
    from ppir.models import HELPERS, network_modules

    assert network_modules() == ["hinet", "mimo_unet", "mirnet"]
    assert HELPERS.isdisjoint(network_modules())

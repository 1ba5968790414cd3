"""requirements-gpu.txt is requirements.txt with the CUDA build of the same Paddle: no pin may drift."""
import os
import re

from conftest import REPO


def pins(name):
    out = {}
    for line in open(os.path.join(REPO, name), encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            pkg, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line).groups()
            out[pkg.lower()] = version
    return out


def test_gpu_requirements_are_the_cpu_ones_with_the_cuda_paddle():
    cpu, gpu = pins("requirements.txt"), pins("requirements-gpu.txt")
    assert gpu.pop("paddlepaddle-gpu") == cpu.pop("paddlepaddle")
    assert gpu == cpu

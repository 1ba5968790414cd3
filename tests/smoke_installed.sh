#!/usr/bin/env bash
# The installed ppir as a user meets it after `pip install .`: a wheel built from this checkout, installed into a
# fresh virtual environment (it sees the system's paddle, numpy, ... so nothing is downloaded), and the `ppir`
# command run from a folder outside the checkout, where `import ppir` can only find the installed copy.
# .ci/run calls it; it needs the `wheel` package (requirements-dev.txt) and takes a few CPU minutes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Build from a copy of what the package is made of (pyproject.toml says what goes in: ppir/ with the demo configs
# it links to), so no build/ or egg-info is left in the checkout, nor a stale one used.
mkdir "$work/src"
(cd "$repo" && tar --exclude=__pycache__ -cf - pyproject.toml README.md LICENSE ppir configs/demo) | tar -xf - -C "$work/src"
python -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/wheel" "$work/src"
python -m venv --system-site-packages --without-pip "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --no-deps --no-index "$work"/wheel/ppir-*.whl
export PATH="$work/venv/bin:$PATH"
unset PYTHONPATH

mkdir "$work/run" && cd "$work/run"
where=$("$py" -c "import ppir, os; print(os.path.dirname(ppir.__file__))")
case "$where" in
    "$work/venv/"*) ;;
    *) echo "smoke: ppir imported from $where, not from the installed wheel" >&2; exit 1 ;;
esac
echo "smoke: ppir installed in $where; running from $PWD"
set -x
# (outputs go to files first: grep -q would close the pipe early, and pipefail count that as a failure)
ppir --help > help.txt && grep -q "quant-report" help.txt
"$py" -m ppir predict --help > help.txt && grep -q "usage: ppir predict" help.txt
ppir model-info -c "$where/configs/demo/hinet_synthetic.yml" --shape 64x64 > info.txt && grep -q "^parameters:" info.txt
# the quick start from an installed package: demo config from package data, every step a `ppir` command
ppir quickstart --model hinet --iters 1 --output qs > qs.txt || { cat qs.txt; exit 1; }
test -s qs/metrics.md && test -n "$(ls qs/restored)" && grep -q "^| test images, non-local means, h " qs/metrics.md
# the shipped demo weights travel in the wheel (package data), and the quick start fine-tunes them
if [ -f "$repo/configs/demo/weights/hinet_synthetic.pdparams" ]; then
    grep -q "^fine-tuning the shipped demo weights $where/configs/demo/weights/hinet_synthetic.pdparams" qs.txt
else
    grep -q "^no shipped demo weights at .*: training from scratch" qs.txt
fi
ppir predict -c "$where/configs/demo/hinet_synthetic.yml" --weights qs/train/best --input qs/data/lq --output pred
test "$(ls pred | wc -l)" = "$(ls qs/data/lq | wc -l)"
# the server needs nothing outside the package: start it, restore one image, stop it
"$py" - <<'PY'
import glob

from ppir.serving.client import get_json, restore_bytes
from ppir.serving.launch import start_server

server = start_server(["--model_dir", "qs/inference", "--port", "0"], "server.log", timeout=300)
try:
    status, health = get_json(server.url + "/health")
    assert status == 200, (status, health)
    image = open(sorted(glob.glob("qs/data/lq/*.png"))[0], "rb").read()
    assert restore_bytes(server.url, image)[:4] == b"\x89PNG"
finally:
    server.stop()
print("smoke: served one image")
PY
set +x
echo "smoke: the installed ppir works from outside the checkout"

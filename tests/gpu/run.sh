#!/usr/bin/env bash
# The whole GPU check (docs/gpu.md) in one command, under a time limit, leaving a JUnit XML and a short Markdown
# report:
#     bash tests/gpu/run.sh                               # on a GPU machine: every check, a GPU required
#     PPIR_GPU_SUITE_DEVICE=cpu bash tests/gpu/run.sh     # the checks a CPU can run (the suite's own proof)
# A GPU run requires its GPU (PPIR_REQUIRE_GPU=1 unless set otherwise): a wheel that cannot see the card fails
# with one line saying why, instead of passing as a row of skips. Exit code: pytest's, or 124 on the time limit.
#   PPIR_GPU_TIME_LIMIT   seconds for the whole run (default 480: 8 minutes)
#   PPIR_GPU_REPORT_DIR   where junit.xml and report.md go (default output/gpu_check)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${PPIR_GPU_REPORT_DIR:-output/gpu_check}
limit=${PPIR_GPU_TIME_LIMIT:-480}
mkdir -p "$out"
rm -f "$out/junit.xml" "$out/report.md"
export NVIDIA_TF32_OVERRIDE=0  # true float32: the suite's tolerances assume it (tests/gpu/conftest.py)
if [ "${PPIR_GPU_SUITE_DEVICE:-}" != "cpu" ]; then
    export PPIR_REQUIRE_GPU=${PPIR_REQUIRE_GPU:-1}
fi
timeout --kill-after=30 "$limit" python -m pytest -q -rfEs -p no:cacheprovider tests/gpu --junitxml "$out/junit.xml"
code=$?
python tests/gpu/report.py --junit "$out/junit.xml" --exit-code "$code" --time-limit "$limit" --output "$out/report.md"
echo "GPU check: exit $code; report $out/report.md, JUnit XML $out/junit.xml"
exit "$code"

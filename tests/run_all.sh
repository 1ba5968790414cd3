#!/usr/bin/env bash
# The whole test suite, as CI runs it (README "Quick start", command 2; .ci/run calls it after installing
# requirements-dev.txt): the pytest suite (unit tests, golden parity, CLIs, README commands, the executed
# AI Studio notebook), then the TIPC lite chains of every network: train -> eval -> export -> infer,
# paddle2onnx, serving and PTQ, with the PSNR lines checked against test_tipc/results.
# Fails on any red test, any 'Run failed' line in a TIPC log, or PSNR drift.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

# --durations: every log (CI's too) lists the slowest tests, so a slow newcomer shows up where it lands
python -m pytest -q --durations=25 tests

for m in mirnet hinet mimo_unet; do
    cfg=test_tipc/configs/$m/train_infer_python.txt
    bash test_tipc/prepare.sh "$cfg" lite_train_lite_infer
    bash test_tipc/test_train_inference_python.sh "$cfg" lite_train_lite_infer
    bash test_tipc/test_paddle2onnx.sh test_tipc/configs/$m/model_linux_cpu_normal_normal_paddle2onnx_python_linux_cpu.txt
    bash test_tipc/test_serving_infer_python.sh test_tipc/configs/$m/model_linux_cpu_normal_normal_serving_python_linux_cpu.txt
    bash test_tipc/test_ptq_inference_python.sh test_tipc/configs/$m/train_ptq_infer_python.txt
    python test_tipc/compare_results.py --gt_file test_tipc/results/python_${m}_results_fp32.txt \
        --log_file "test_tipc/output/$m/lite_train_lite_infer/python_infer_*.log" --atol 0.05
done
if grep -rl "Run failed" test_tipc/output/*/*/results_*.log; then
    echo "TIPC: some command failed (see the logs above)" >&2
    exit 1
fi
echo "all tests passed in $(( $(date +%s) - start )) s"

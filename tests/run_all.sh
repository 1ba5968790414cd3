#!/usr/bin/env bash
# The whole test suite, as CI runs it (README "Quick start", command 2; .ci/run calls it after installing
# requirements-dev.txt): the pytest suite (unit tests, golden parity, CLIs, README commands, the executed
# AI Studio notebook), then the TIPC lite chains of every network: train -> eval -> export -> infer,
# paddle2onnx, serving and PTQ, with the PSNR lines checked against test_tipc/results.
# Fails on any red test, any 'Run failed' line in a TIPC log, or PSNR drift.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

# -n: one pytest-xdist worker per core (at most 4; PPIR_TEST_WORKERS=1 runs in one process). Much of the suite waits
# on child processes (tools, servers, a Ray cluster) that use one core, so two workers keep both busy; conftest gives
# each worker its share of the cores for Paddle's threads. --dist loadgroup keeps the tests that share the default
# quick start on one worker. --durations: every log (CI's too) lists the slowest tests, so a slow newcomer shows up.
python -m pytest -q -n "${PPIR_TEST_WORKERS:-auto}" --maxprocesses=4 --dist loadgroup --durations=25 tests

tipc_chain() {  # one network's TIPC chain, stopping at its first failed driver
    local m=$1 cfg=test_tipc/configs/$1/train_infer_python.txt
    bash test_tipc/prepare.sh "$cfg" lite_train_lite_infer
    bash test_tipc/test_train_inference_python.sh "$cfg" lite_train_lite_infer
    bash test_tipc/test_paddle2onnx.sh test_tipc/configs/$m/model_linux_cpu_normal_normal_paddle2onnx_python_linux_cpu.txt
    bash test_tipc/test_serving_infer_python.sh test_tipc/configs/$m/model_linux_cpu_normal_normal_serving_python_linux_cpu.txt
    bash test_tipc/test_ptq_inference_python.sh test_tipc/configs/$m/train_ptq_infer_python.txt
    python test_tipc/compare_results.py --gt_file test_tipc/results/python_${m}_results_fp32.txt \
        --log_file "test_tipc/output/$m/lite_train_lite_infer/python_infer_*.log" --atol 0.05
}

# The three chains run side by side (each writes only under test_tipc/{data,output}/<model>, and the serving driver
# takes a free port): they are mostly process start-ups, so two cores run three chains in about the time of two.
# One math thread per process, so the chains' processes do not oversubscribe the cores. Each chain's console goes to
# a file, printed whole when all have finished, so the log reads one chain at a time.
models=(mirnet hinet mimo_unet)
mkdir -p test_tipc/output
pids=()
for m in "${models[@]}"; do
    (set -e; OMP_NUM_THREADS=1 tipc_chain "$m") > "test_tipc/output/chain_$m.log" 2>&1 &
    pids+=($!)
done
failed=()
for i in "${!models[@]}"; do
    m=${models[$i]}
    status=0
    wait "${pids[$i]}" || status=$?
    echo "=== TIPC chain $m (exit $status) ==="
    cat "test_tipc/output/chain_$m.log"
    [ "$status" -eq 0 ] || failed+=("$m")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "TIPC: the chain of ${failed[*]} failed (its log is above)" >&2
    exit 1
fi
if grep -rl "Run failed" test_tipc/output/*/*/results_*.log; then
    echo "TIPC: some command failed (see the logs above)" >&2
    exit 1
fi
echo "all tests passed in $(( $(date +%s) - start )) s"

#!/bin/bash
# TIPC PTQ chain: post-training int8 quantization of an exported model (ONNX Runtime static quantization,
# percentile calibration, via tools/quant_report.py), then int8 inference with deploy/onnxruntime/infer.py.
# Usage: bash test_tipc/test_ptq_inference_python.sh CONFIG [MODE]
# The config is the 20-line ptq layout (test_tipc/configs/<model>/train_ptq_infer_python.txt). Paddle's own PTQ
# (paddleslim) cannot quantize PIR programs in Paddle 3.3, hence ONNX Runtime (see docs/quantization.md).
set -f
source test_tipc/common_func.sh

FILENAME=$1
MODE=${2:-whole_infer}
if [ -z "${FILENAME}" ]; then
    echo "usage: bash test_tipc/test_ptq_inference_python.sh CONFIG [MODE]" >&2
    exit 2
fi
func_load_config "${FILENAME}" ptq 20

model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
ptq_params=""
for i in 3 4 5 6 7 8 9; do   # lines 4-10: key:value flags of the quantization tool
    ptq_params="${ptq_params} $(func_set_params "$(func_parser_key "${lines[i]}")" "$(func_parser_value "${lines[i]}")")"
done
model_dir=$(func_parser_value "${lines[3]}")
save_dir=$(func_parser_value "${lines[4]}")
ptq_py=$(func_parser_value "${lines[11]}")
inference_py=$(func_parser_value "${lines[13]}")
infer_params=""
for i in 14 15 16 18 19; do  # lines 15-17 and 19-20; line 18 is the model-dir key, filled in below
    infer_params="${infer_params} $(func_set_params "$(func_parser_key "${lines[i]}")" "$(func_parser_value "${lines[i]}")")"
done
infer_model_key=$(func_parser_key "${lines[17]}")

LOG_PATH="./test_tipc/output/${model_name}/${MODE}_ptq"
mkdir -p "${LOG_PATH}"
status_log="${LOG_PATH}/results_python.log"
: > "${status_log}"

ptq_log="${LOG_PATH}/ptq.log"
ptq_cmd="${python} ${ptq_py} ${ptq_params} > ${ptq_log} 2>&1 "
eval "${ptq_cmd}"
last_status=$?
cat "${ptq_log}"
status_check ${last_status} "${ptq_cmd}" "${status_log}" "${model_name}" "${ptq_log}"

infer_log="${LOG_PATH}/python_infer_cpu_precision_int8_batchsize_1.log"
set_model_dir=$(func_set_params "${infer_model_key}" "${model_dir}")
infer_cmd="${python} ${inference_py} ${set_model_dir} --model_file=${save_dir}/model_int8.onnx ${infer_params} --benchmark=True > ${infer_log} 2>&1 "
eval "${infer_cmd}"
last_status=$?
cat "${infer_log}"
status_check ${last_status} "${infer_cmd}" "${status_log}" "${model_name}" "${infer_log}"

tipc_finish "${status_log}"

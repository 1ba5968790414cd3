#!/bin/bash
# TIPC paddle2onnx chain: convert an exported Paddle program to ONNX (checked against Paddle), then restore
# images with ONNX Runtime. Usage: bash test_tipc/test_paddle2onnx.sh CONFIG [MODE]
# The config is the 14-line paddle2onnx layout (test_tipc/configs/<model>/model_linux_cpu_normal_normal_paddle2onnx_python_linux_cpu.txt).
# Run it after test_train_inference_python.sh has exported a model into the --model_dir of line 5.
set -f
source test_tipc/common_func.sh

FILENAME=$1
MODE=${2:-paddle2onnx_infer}
if [ -z "${FILENAME}" ]; then
    echo "usage: bash test_tipc/test_paddle2onnx.sh CONFIG [MODE]" >&2
    exit 2
fi
func_load_config "${FILENAME}" paddle2onnx 14

model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
padle2onnx_cmd=$(func_parser_value "${lines[3]}")
infer_model_key=$(func_parser_key "${lines[4]}")
infer_model_value=$(func_parser_value "${lines[4]}")
model_filename_key=$(func_parser_key "${lines[5]}")
model_filename_value=$(func_parser_value "${lines[5]}")
params_filename_key=$(func_parser_key "${lines[6]}")
params_filename_value=$(func_parser_value "${lines[6]}")
save_file_key=$(func_parser_key "${lines[7]}")
save_file_value=$(func_parser_value "${lines[7]}")
opset_version_key=$(func_parser_key "${lines[8]}")
opset_version_value=$(func_parser_value "${lines[8]}")
check_key=$(func_parser_key "${lines[9]}")
check_value=$(func_parser_value "${lines[9]}")
inference_py=$(func_parser_value "${lines[10]}")
onnx_file_key=$(func_parser_key "${lines[11]}")
image_dir_key=$(func_parser_key "${lines[12]}")
image_dir_value=$(func_parser_value "${lines[12]}")
gt_dir_key=$(func_parser_key "${lines[13]}")
gt_dir_value=$(func_parser_value "${lines[13]}")

LOG_PATH="./test_tipc/output/${model_name}/${MODE}"
mkdir -p "${LOG_PATH}"
status_log="${LOG_PATH}/results_paddle2onnx.log"
: > "${status_log}"

# convert (and check against the Paddle program)
set_model_dir=$(func_set_params "${infer_model_key}" "${infer_model_value}")
set_model_filename=$(func_set_params "${model_filename_key}" "${model_filename_value}")
set_params_filename=$(func_set_params "${params_filename_key}" "${params_filename_value}")
set_save_model=$(func_set_params "${save_file_key}" "${save_file_value}")
set_opset_version=$(func_set_params "${opset_version_key}" "${opset_version_value}")
set_check=$(func_set_params "${check_key}" "${check_value}")
trans_log="${LOG_PATH}/trans_model.log"
trans_cmd="${python} ${padle2onnx_cmd} ${set_model_dir} ${set_model_filename} ${set_params_filename} ${set_save_model} ${set_opset_version} ${set_check} > ${trans_log} 2>&1 "
eval "${trans_cmd}"
last_status=$?
cat "${trans_log}"
status_check ${last_status} "${trans_cmd}" "${status_log}" "${model_name}" "${trans_log}"

# inference with ONNX Runtime: the converted file (line 8's value) is what runs, as in the reference script
set_onnx_file=$(func_set_params "${onnx_file_key}" "${save_file_value}")
set_image_dir=$(func_set_params "${image_dir_key}" "${image_dir_value}")
set_gt_dir=$(func_set_params "${gt_dir_key}" "${gt_dir_value}")
infer_log="${LOG_PATH}/paddle2onnx_infer_cpu.log"
infer_cmd="${python} ${inference_py} ${set_model_dir} ${set_onnx_file} ${set_image_dir} ${set_gt_dir} --use_gpu=False --benchmark=True > ${infer_log} 2>&1 "
eval "${infer_cmd}"
last_status=$?
cat "${infer_log}"
status_check ${last_status} "${infer_cmd}" "${status_log}" "${model_name}" "${infer_log}"

tipc_finish "${status_log}"

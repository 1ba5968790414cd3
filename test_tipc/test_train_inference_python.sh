#!/bin/bash
# TIPC basic chain: train -> eval -> export -> Paddle Inference, driven by a 51-line train_infer_python.txt.
# Usage: bash test_tipc/test_train_inference_python.sh CONFIG MODE [GPU_ID]
#   MODE: lite_train_lite_infer | lite_train_whole_infer | whole_train_whole_infer | whole_infer
# Same config layout, command lines, log files and log wording as PaddleOCR's driver. Fixes: the config is
# validated first; values are split on the first ':' only and never glob-expanded; the status log is reset per
# run; every command is checked with its own exit code; the script exits non-zero when any command failed.
set -f
source test_tipc/common_func.sh

FILENAME=$1
MODE=$2
if [ -z "${FILENAME}" ] || [ -z "${MODE}" ]; then
    echo "usage: bash test_tipc/test_train_inference_python.sh CONFIG MODE [GPU_ID]" >&2
    exit 2
fi
case ${MODE} in
    lite_train_lite_infer|lite_train_whole_infer|whole_train_whole_infer|whole_infer) ;;
    *) echo "unknown MODE '${MODE}' (lite_train_lite_infer, lite_train_whole_infer, whole_train_whole_infer, whole_infer)" >&2
       exit 2 ;;
esac
func_load_config "${FILENAME}" train_infer_python 51

# train params
model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
gpu_list=$(func_parser_value "${lines[3]}")
train_use_gpu_key=$(func_parser_key "${lines[4]}")
train_use_gpu_value=$(func_parser_value "${lines[4]}")
autocast_list=$(func_parser_value "${lines[5]}")
autocast_key=$(func_parser_key "${lines[5]}")
epoch_key=$(func_parser_key "${lines[6]}")
epoch_num=$(func_parser_params "${lines[6]}" "${MODE}")
save_model_key=$(func_parser_key "${lines[7]}")
train_batch_key=$(func_parser_key "${lines[8]}")
train_batch_value=$(func_parser_params "${lines[8]}" "${MODE}")
pretrain_model_key=$(func_parser_key "${lines[9]}")
pretrain_model_value=$(func_parser_value "${lines[9]}")
train_model_name=$(func_parser_value "${lines[10]}")
train_infer_img_dir=$(func_parser_value "${lines[11]}")
train_param_key1=$(func_parser_key "${lines[12]}")
train_param_value1=$(func_parser_value "${lines[12]}")

trainer_list=$(func_parser_value "${lines[14]}")
trainer_norm=$(func_parser_key "${lines[15]}")
norm_trainer=$(func_parser_value "${lines[15]}")
pact_key=$(func_parser_key "${lines[16]}")
pact_trainer=$(func_parser_value "${lines[16]}")
fpgm_key=$(func_parser_key "${lines[17]}")
fpgm_trainer=$(func_parser_value "${lines[17]}")
distill_key=$(func_parser_key "${lines[18]}")
distill_trainer=$(func_parser_value "${lines[18]}")
trainer_key1=$(func_parser_key "${lines[19]}")
trainer_value1=$(func_parser_value "${lines[19]}")
trainer_key2=$(func_parser_key "${lines[20]}")
trainer_value2=$(func_parser_value "${lines[20]}")

eval_py=$(func_parser_value "${lines[23]}")
eval_key1=$(func_parser_key "${lines[24]}")
eval_value1=$(func_parser_value "${lines[24]}")

save_infer_key=$(func_parser_key "${lines[27]}")
export_weight=$(func_parser_key "${lines[28]}")
norm_export=$(func_parser_value "${lines[29]}")
pact_export=$(func_parser_value "${lines[30]}")
fpgm_export=$(func_parser_value "${lines[31]}")
distill_export=$(func_parser_value "${lines[32]}")
export_key1=$(func_parser_key "${lines[33]}")
export_value1=$(func_parser_value "${lines[33]}")
export_key2=$(func_parser_key "${lines[34]}")
export_value2=$(func_parser_value "${lines[34]}")
inference_dir=$(func_parser_value "${lines[35]}")

# parser inference model
infer_model_dir_list=$(func_parser_value "${lines[36]}")
infer_export_list=$(func_parser_value "${lines[37]}")
infer_is_quant=$(func_parser_value "${lines[38]}")
# parser inference
inference_py=$(func_parser_value "${lines[39]}")
use_gpu_key=$(func_parser_key "${lines[40]}")
use_gpu_list=$(func_parser_value "${lines[40]}")
use_mkldnn_key=$(func_parser_key "${lines[41]}")
use_mkldnn_list=$(func_parser_value "${lines[41]}")
cpu_threads_key=$(func_parser_key "${lines[42]}")
cpu_threads_list=$(func_parser_value "${lines[42]}")
batch_size_key=$(func_parser_key "${lines[43]}")
batch_size_list=$(func_parser_value "${lines[43]}")
use_trt_key=$(func_parser_key "${lines[44]}")
use_trt_list=$(func_parser_value "${lines[44]}")
precision_key=$(func_parser_key "${lines[45]}")
precision_list=$(func_parser_value "${lines[45]}")
infer_model_key=$(func_parser_key "${lines[46]}")
image_dir_key=$(func_parser_key "${lines[47]}")
infer_img_dir=$(func_parser_value "${lines[47]}")
save_log_key=$(func_parser_key "${lines[48]}")
benchmark_key=$(func_parser_key "${lines[49]}")
benchmark_value=$(func_parser_value "${lines[49]}")
infer_key1=$(func_parser_key "${lines[50]}")
infer_value1=$(func_parser_value "${lines[50]}")

LOG_PATH="./test_tipc/output/${model_name}/${MODE}"
mkdir -p "${LOG_PATH}"
status_log="${LOG_PATH}/results_python.log"
: > "${status_log}"   # one run, one log: results of earlier runs never mix in

function run_and_check(){
    # run_and_check <command> <log path>: eval the command, check ITS exit code, then show its log
    local cmd=$1
    local log_path=$2
    eval "${cmd}"
    local last_status=$?
    if [ -n "${log_path}" ] && [ -f "${log_path}" ] && [[ "${cmd}" == *"> ${log_path}"* ]]; then
        cat "${log_path}"
    fi
    status_check ${last_status} "${cmd}" "${status_log}" "${model_name}" "${log_path}"
}

function func_inference(){
    local _python=$1
    local _script=$2
    local _model_dir=$3
    local _log_path=$4
    local _img_dir=$5
    local _flag_quant=$6
    local _gpu=$7
    local use_gpu use_mkldnn threads precision batch_size use_trt
    local IFS="|"
    for use_gpu in ${use_gpu_list}; do
        if [ "${use_gpu}" = "False" ] || [ "${use_gpu}" = "cpu" ]; then
            for use_mkldnn in ${use_mkldnn_list}; do
                for threads in ${cpu_threads_list}; do
                    for batch_size in ${batch_size_list}; do
                        for precision in ${precision_list}; do
                            if [ "${use_mkldnn}" = "False" ] && [ "${precision}" = "fp16" ]; then
                                continue
                            fi # skip when enable fp16 but disable mkldnn
                            if [ "${_flag_quant}" = "True" ] && [ "${precision}" != "int8" ]; then
                                continue
                            fi # skip when quant model inference but precision is not int8
                            local _save_log_path="${_log_path}/python_infer_cpu_gpus_${_gpu}_usemkldnn_${use_mkldnn}_threads_${threads}_precision_${precision}_batchsize_${batch_size}.log"
                            local set_infer_data set_benchmark set_batchsize set_mkldnn set_cpu_threads set_model_dir set_infer_params1 set_precision
                            set_infer_data=$(func_set_params "${image_dir_key}" "${_img_dir}")
                            set_benchmark=$(func_set_params "${benchmark_key}" "${benchmark_value}")
                            set_batchsize=$(func_set_params "${batch_size_key}" "${batch_size}")
                            set_mkldnn=$(func_set_params "${use_mkldnn_key}" "${use_mkldnn}")
                            set_cpu_threads=$(func_set_params "${cpu_threads_key}" "${threads}")
                            set_model_dir=$(func_set_params "${infer_model_key}" "${_model_dir}")
                            set_infer_params1=$(func_set_params "${infer_key1}" "${infer_value1}")
                            set_precision=$(func_set_params "${precision_key}" "${precision}")
                            local command="${_python} ${_script} ${use_gpu_key}=${use_gpu} ${set_mkldnn} ${set_cpu_threads} ${set_model_dir} ${set_batchsize} ${set_infer_data} ${set_benchmark} ${set_precision} ${set_infer_params1} > ${_save_log_path} 2>&1 "
                            run_and_check "${command}" "${_save_log_path}"
                        done
                    done
                done
            done
        elif [ "${use_gpu}" = "True" ] || [ "${use_gpu}" = "gpu" ]; then
            for use_trt in ${use_trt_list}; do
                for precision in ${precision_list}; do
                    if [ "${_flag_quant}" = "False" ] && [ "${precision}" = "int8" ]; then
                        continue
                    fi
                    if [ "${use_trt}" = "False" ] && { [ "${precision}" = "fp16" ] || [ "${precision}" = "int8" ]; }; then
                        continue
                    fi
                    for batch_size in ${batch_size_list}; do
                        local _save_log_path="${_log_path}/python_infer_gpu_gpus_${_gpu}_usetrt_${use_trt}_precision_${precision}_batchsize_${batch_size}.log"
                        local set_infer_data set_benchmark set_batchsize set_tensorrt set_precision set_model_dir set_infer_params1
                        set_infer_data=$(func_set_params "${image_dir_key}" "${_img_dir}")
                        set_benchmark=$(func_set_params "${benchmark_key}" "${benchmark_value}")
                        set_batchsize=$(func_set_params "${batch_size_key}" "${batch_size}")
                        set_tensorrt=$(func_set_params "${use_trt_key}" "${use_trt}")
                        set_precision=$(func_set_params "${precision_key}" "${precision}")
                        set_model_dir=$(func_set_params "${infer_model_key}" "${_model_dir}")
                        set_infer_params1=$(func_set_params "${infer_key1}" "${infer_value1}")
                        local command="${_python} ${_script} ${use_gpu_key}=${use_gpu} ${set_tensorrt} ${set_precision} ${set_model_dir} ${set_batchsize} ${set_infer_data} ${set_benchmark} ${set_infer_params1} > ${_save_log_path} 2>&1 "
                        run_and_check "${command}" "${_save_log_path}"
                    done
                done
            done
        else
            echo "Does not support hardware other than CPU and GPU Currently!"
        fi
    done
}

if [ "${MODE}" = "whole_infer" ]; then
    GPUID=$3
    if [ -z "${GPUID}" ]; then
        GPUID=0
    fi
    env="export CUDA_VISIBLE_DEVICES=${GPUID}"
    eval "${env}"
    IFS="|"
    infer_models=(${infer_model_dir_list})
    infer_exports=(${infer_export_list})
    infer_quants=(${infer_is_quant})
    unset IFS
    Count=0
    for infer_model in "${infer_models[@]}"; do
        # run export
        if [ "${infer_exports[Count]}" != "null" ] && [ -n "${infer_exports[Count]}" ]; then
            save_infer_dir="${LOG_PATH}/export_${Count}"
            set_export_weight=$(func_set_params "${export_weight}" "${infer_model}")
            set_save_infer_key=$(func_set_params "${save_infer_key}" "${save_infer_dir}")
            export_log_path="${LOG_PATH}/_export_${Count}.log"
            export_cmd="${python} ${infer_exports[Count]} ${set_export_weight} ${set_save_infer_key} > ${export_log_path} 2>&1 "
            run_and_check "${export_cmd}" "${export_log_path}"
        else
            save_infer_dir=${infer_model}
        fi
        # run inference
        is_quant=${infer_quants[Count]:-False}
        func_inference "${python}" "${inference_py}" "${save_infer_dir}" "${LOG_PATH}" "${infer_img_dir}" "${is_quant}" "${GPUID}"
        Count=$((Count + 1))
    done
else
    IFS="|"
    gpus=(${gpu_list})
    train_use_gpus=(${train_use_gpu_value})
    autocasts=(${autocast_list})
    trainers=(${trainer_list})
    unset IFS
    Count=0
    for gpu in "${gpus[@]}"; do
        train_use_gpu=${train_use_gpus[Count]}
        Count=$((Count + 1))
        ips=""
        if [ "${gpu}" = "-1" ]; then
            env=""
        elif [ ${#gpu} -le 1 ]; then
            env="export CUDA_VISIBLE_DEVICES=${gpu}"
            eval "${env}"
        elif [ ${#gpu} -le 15 ]; then
            env="export CUDA_VISIBLE_DEVICES=${gpu%%,*}"
        else
            ips=${gpu%%;*}
            gpu=${gpu#*;}
            env=" "
        fi
        for autocast in "${autocasts[@]}"; do
            for trainer in "${trainers[@]}"; do
                flag_quant=False
                if [ "${trainer}" = "${pact_key}" ]; then
                    run_train=${pact_trainer}
                    run_export=${pact_export}
                    flag_quant=True
                elif [ "${trainer}" = "${fpgm_key}" ]; then
                    run_train=${fpgm_trainer}
                    run_export=${fpgm_export}
                elif [ "${trainer}" = "${distill_key}" ]; then
                    run_train=${distill_trainer}
                    run_export=${distill_export}
                elif [ "${trainer}" = "${trainer_key1}" ]; then
                    run_train="${norm_trainer} ${trainer_value1}"
                    run_export=${export_value1}
                elif [ "${trainer}" = "${trainer_key2}" ]; then
                    run_train=${trainer_value2}
                    run_export=${export_value2}
                else
                    run_train=${norm_trainer}
                    run_export=${norm_export}
                fi
                if [ "${run_train}" = "null" ]; then
                    continue
                fi
                set_autocast=$(func_set_params "${autocast_key}" "${autocast}")
                set_epoch=$(func_set_params "${epoch_key}" "${epoch_num}")
                set_pretrain=$(func_set_params "${pretrain_model_key}" "${pretrain_model_value}")
                set_batchsize=$(func_set_params "${train_batch_key}" "${train_batch_value}")
                set_train_params1=$(func_set_params "${train_param_key1}" "${train_param_value1}")
                set_use_gpu=$(func_set_params "${train_use_gpu_key}" "${train_use_gpu}")
                if [ ${#ips} -le 15 ]; then
                    save_log="${LOG_PATH}/${trainer}_gpus_${gpu}_autocast_${autocast}"
                    nodes=1
                else
                    nodes=$(echo "${ips}" | tr ',' '\n' | wc -l)
                    save_log="${LOG_PATH}/${trainer}_gpus_${gpu}_autocast_${autocast}_nodes_${nodes}"
                fi
                set_save_model=$(func_set_params "${save_model_key}" "${save_log}")
                if [ ${#gpu} -le 2 ]; then  # CPU or a single GPU
                    cmd="${python} ${run_train} ${set_use_gpu} ${set_save_model} ${set_epoch} ${set_pretrain} ${set_autocast} ${set_batchsize} ${set_train_params1}"
                elif [ ${#ips} -le 15 ]; then  # several GPUs on one machine
                    cmd="${python} -m paddle.distributed.launch --gpus=${gpu} ${run_train} ${set_use_gpu} ${set_save_model} ${set_epoch} ${set_pretrain} ${set_autocast} ${set_batchsize} ${set_train_params1}"
                else  # several machines
                    cmd="${python} -m paddle.distributed.launch --ips=${ips} --gpus=${gpu} ${run_train} ${set_use_gpu} ${set_save_model} ${set_epoch} ${set_pretrain} ${set_autocast} ${set_batchsize} ${set_train_params1}"
                fi
                # run train (its output goes to the console, as in the reference drivers, and to <save_log>.log)
                rm -rf "${save_log}"  # the chain's own earlier output: train refuses a folder holding a run
                mkdir -p "${save_log}"
                eval "${cmd}" 2>&1 | tee "${save_log}.log"
                status_check ${PIPESTATUS[0]} "${cmd}" "${status_log}" "${model_name}" "${save_log}.log"

                set_eval_pretrain=$(func_set_params "${pretrain_model_key}" "${save_log}/${train_model_name}")
                # run eval
                if [ "${eval_py}" != "null" ]; then
                    eval "${env}"
                    set_eval_params1=$(func_set_params "${eval_key1}" "${eval_value1}")
                    eval_log_path="${LOG_PATH}/${trainer}_gpus_${gpu}_autocast_${autocast}_nodes_${nodes}_eval.log"
                    eval_cmd="${python} ${eval_py} ${set_eval_pretrain} ${set_use_gpu} ${set_eval_params1} > ${eval_log_path} 2>&1 "
                    run_and_check "${eval_cmd}" "${eval_log_path}"
                fi
                # run export and inference
                if [ "${run_export}" != "null" ]; then
                    save_infer_path="${save_log}"
                    export_log_path="${LOG_PATH}/${trainer}_gpus_${gpu}_autocast_${autocast}_nodes_${nodes}_export.log"
                    set_export_weight=$(func_set_params "${export_weight}" "${save_log}/${train_model_name}")
                    set_save_infer_key=$(func_set_params "${save_infer_key}" "${save_infer_path}")
                    export_cmd="${python} ${run_export} ${set_export_weight} ${set_save_infer_key} > ${export_log_path} 2>&1 "
                    run_and_check "${export_cmd}" "${export_log_path}"

                    eval "${env}"
                    if [ "${inference_dir}" != "null" ] && [ "${inference_dir}" != "##" ]; then
                        infer_model_dir="${save_infer_path}/${inference_dir}"
                    else
                        infer_model_dir=${save_infer_path}
                    fi
                    func_inference "${python}" "${inference_py}" "${infer_model_dir}" "${LOG_PATH}" "${train_infer_img_dir}" "${flag_quant}" "${gpu}"
                    eval "unset CUDA_VISIBLE_DEVICES"
                fi
            done  # trainer
        done      # autocast
    done          # gpu
fi

tipc_finish "${status_log}"

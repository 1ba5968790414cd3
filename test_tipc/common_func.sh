#!/bin/bash
# Shared helpers of the TIPC scripts, compatible with PaddleOCR/PaddleClas/PaddleGAN's common_func.sh:
# same function names, arguments and log wording. Differences, each a fix of a known pain point:
#   * a value is everything after the FIRST ':' (URLs and 'a:b' values survive);
#   * no function leaks IFS (each uses a local one);
#   * callers run with globbing off (set -f), so values are never glob-expanded.

function func_parser_key(){
    local line=${1%$'\r'}
    echo "${line%%:*}"
}

function func_parser_value(){
    local line=${1%$'\r'}
    if [[ "${line}" == *:* ]]; then
        echo "${line#*:}"
    fi
}

function func_set_params(){
    # "key=value", or a single space when the key or the value is null/empty (the flag is then left out)
    local key=$1
    local value=$2
    if [ "${key}" = "null" ] || [ "${value}" = "null" ] || [ -z "${value}" ] || [ "${value}" = " " ]; then
        echo " "
    else
        echo "${key}=${value}"
    fi
}

function func_parser_params(){
    # "key:mode1=v1|mode2=v2" -> the value for MODE (second argument, else the global MODE); empty if absent
    local line=$1
    local mode=${2:-${MODE}}
    local value
    value=$(func_parser_value "${line}")
    local IFS="|"
    local item
    for item in ${value}; do
        if [ "${item%%=*}" = "${mode}" ]; then
            echo "${item#*=}"
            return
        fi
    done
    echo ""
}

function status_check(){
    # status_check <exit code> <command> <status log> [<model name>] [<log path>]: one line, standard wording
    local last_status=$1
    local run_command=$2
    local run_log=$3
    local model_name=$4
    local log_path=$5
    if [ "${last_status}" -eq 0 ]; then
        echo -e "\033[33m Run successfully with command - ${model_name} - ${run_command} - ${log_path} \033[0m" | tee -a "${run_log}"
    else
        echo -e "\033[33m Run failed with command - ${model_name} - ${run_command} - ${log_path} \033[0m" | tee -a "${run_log}"
        TIPC_FAILED=$((${TIPC_FAILED:-0} + 1))
    fi
}

function tipc_finish(){
    # Summary and exit status of a driver: non-zero when any command failed (the reference scripts exit 0).
    local run_log=$1
    local total
    local failed
    total=$(grep -c "Run .* with command" "${run_log}" 2>/dev/null || true)
    failed=$(grep -c "Run failed with command" "${run_log}" 2>/dev/null || true)
    echo "TIPC summary: ${total:-0} commands, ${failed:-0} failed (log: ${run_log})"
    if [ "${failed:-0}" != "0" ]; then
        exit 1
    fi
    exit 0
}

# func_load_config FILE LAYOUT N: validate FILE with check_config.py against LAYOUT (when LAYOUT is empty, only
# check that FILE exists), then read its first N lines into the global array `lines` (CRs dropped; callers run
# with `set -f`, so no value is glob-expanded). Exits the calling script with code 2 on a bad config.
function func_load_config(){
    local file=$1 layout=$2 n=$3 dataline
    if [ -n "${layout}" ]; then
        python3 test_tipc/check_config.py "${file}" "${layout}" || exit 2
    elif [ ! -f "${file}" ]; then
        echo "config not found: ${file}" >&2
        exit 2
    fi
    dataline=$(awk -v n="${n}" 'NR>=1 && NR<=n' "${file}" | tr -d '\r')
    IFS=$'\n'
    lines=(${dataline})
    unset IFS
}

#!/bin/bash
# TIPC serving chain: start the HTTP server (deploy/serving/server.py) on an exported model, wait for its port,
# send the client's requests in both formats (PaddleX /image-restoration and the Paddle Serving pipeline
# /<name>/prediction), and stop the server by its PID. Usage: bash test_tipc/test_serving_infer_python.sh CONFIG [MODE]
# The config is the 18-line serving layout (test_tipc/configs/<model>/model_linux_cpu_normal_normal_serving_python_linux_cpu.txt).
# Fixes over the reference script: readiness is polled (no fixed sleep), only our own server PID is killed,
# LOG_PATH is absolute, every command's own exit status is checked, and the script exits non-zero on failure.
set -f
source test_tipc/common_func.sh

FILENAME=$1
MODE=${2:-serving_infer}
if [ -z "${FILENAME}" ]; then
    echo "usage: bash test_tipc/test_serving_infer_python.sh CONFIG [MODE]" >&2
    exit 2
fi
func_load_config "${FILENAME}" serving 18

model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
trans_model_py=$(func_parser_value "${lines[3]}")
model_dir_key=$(func_parser_key "${lines[4]}")
model_dir_value=$(func_parser_value "${lines[4]}")
serving_dir=$(func_parser_value "${lines[9]}")
web_service_py=$(func_parser_value "${lines[10]}")
backend_key=$(func_parser_key "${lines[11]}")
backend_list=$(func_parser_value "${lines[11]}")
workers_key=$(func_parser_key "${lines[12]}")
workers_value=$(func_parser_value "${lines[12]}")
threads_key=$(func_parser_key "${lines[13]}")
threads_value=$(func_parser_value "${lines[13]}")
format_key=$(func_parser_key "${lines[14]}")
format_list=$(func_parser_value "${lines[14]}")
pipeline_py=$(func_parser_value "${lines[16]}")
image_key=$(func_parser_key "${lines[17]}")
image_value=$(func_parser_value "${lines[17]}")

LOG_PATH="$(pwd)/test_tipc/output/${model_name}/${MODE}"
mkdir -p "${LOG_PATH}"
status_log="${LOG_PATH}/results_serving.log"
: > "${status_log}"

if [ "${trans_model_py}" != "null" ] && [ -n "${trans_model_py}" ]; then
    echo "note: trans_model '${trans_model_py}' ignored: the server reads the export folder directly"
fi

function free_port(){
    ${python} -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()"
}

function wait_ready(){
    # wait_ready <port> <pid> <seconds>: poll /health until it answers 200, the server dies, or time runs out
    ${python} - "$1" "$2" "$3" <<'PY'
import os, sys, time, urllib.request
port, pid, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
end = time.time() + limit
while time.time() < end:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("server exited before it was ready")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(f"server not ready after {limit:.0f} s")
PY
}

IFS="|"
backends=(${backend_list})
formats=(${format_list})
unset IFS
for backend in "${backends[@]}"; do
    port=$(free_port)
    server_log="${LOG_PATH}/server_cpu_${backend}.log"
    set_model_dir=$(func_set_params "${model_dir_key}" "${model_dir_value}")
    set_backend=$(func_set_params "${backend_key}" "${backend}")
    set_workers=$(func_set_params "${workers_key}" "${workers_value}")
    set_threads=$(func_set_params "${threads_key}" "${threads_value}")
    server_cmd="${python} ${serving_dir}/${web_service_py} ${set_model_dir} ${set_backend} ${set_workers} ${set_threads} --host=127.0.0.1 --port=${port} > ${server_log} 2>&1 &"
    eval "${server_cmd}"
    server_pid=$!
    wait_ready "${port}" "${server_pid}" 180
    last_status=$?
    status_check ${last_status} "${server_cmd}" "${status_log}" "${model_name}" "${server_log}"
    if [ ${last_status} -ne 0 ]; then
        cat "${server_log}"
        kill "${server_pid}" 2>/dev/null
        continue
    fi
    for fmt in "${formats[@]}"; do
        client_log="${LOG_PATH}/server_infer_cpu_${backend}_${fmt}_batchsize_1.log"
        set_image=$(func_set_params "${image_key}" "${image_value}")
        set_format=$(func_set_params "${format_key}" "${fmt}")
        client_cmd="${python} ${serving_dir}/${pipeline_py} --url=http://127.0.0.1:${port} ${set_image} --output=${LOG_PATH}/restored_${backend}_${fmt}.png ${set_format} > ${client_log} 2>&1 "
        eval "${client_cmd}"
        last_status=$?
        cat "${client_log}"
        status_check ${last_status} "${client_cmd}" "${status_log}" "${model_name}" "${client_log}"
    done
    kill "${server_pid}" 2>/dev/null
    wait "${server_pid}" 2>/dev/null
done

tipc_finish "${status_log}"

#!/bin/bash
# Prepare data for a TIPC chain. Usage: bash test_tipc/prepare.sh CONFIG MODE
# lite_* modes need no network: the data is made offline from scikit-image's bundled sample images with
# synthetic degradations (noise for MIRNet/HINet, motion blur for MIMO-UNet). The other modes need the real
# datasets or weights, which cannot be downloaded by a script; this prints where to put them.
# Idempotent: running it twice gives the same files.
set -f
source test_tipc/common_func.sh

FILENAME=$1
MODE=$2
if [ -z "${FILENAME}" ] || [ -z "${MODE}" ]; then
    echo "usage: bash test_tipc/prepare.sh CONFIG MODE" >&2
    exit 2
fi
func_load_config "${FILENAME}" "" 3
model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
python=${python:-python}

case ${model_name} in
    mirnet)           degradation=gaussian_noise; lite_size=64x64;   whole_size=256x256 ;;
    hinet)            degradation=gaussian_noise; lite_size=64x64;   whole_size=256x256 ;;
    mimo_unet)        degradation=motion_blur;    lite_size=64x96;   whole_size=360x640 ;;
    *) echo "prepare.sh: unknown model_name '${model_name}' (mirnet, hinet, mimo_unet)" >&2; exit 2 ;;
esac
data_dir=./test_tipc/data/${model_name}

function make_pairs(){
    # make_pairs <out dir> <num> <size> <seed>: rebuild the folder from scratch (idempotent)
    rm -rf "$1"
    ${python} tools/make_synthetic_data.py --degradation ${degradation} --out "$1" --num "$2" --size "$3" --seed "$4" || exit 1
}

case ${MODE} in
    lite_train_lite_infer)
        make_pairs "${data_dir}/train" 8 "${lite_size}" 0
        make_pairs "${data_dir}/val" 2 "${lite_size}" 1
        make_pairs "${data_dir}/infer" 2 "${lite_size}" 2
        ;;
    lite_train_whole_infer)
        make_pairs "${data_dir}/train" 8 "${lite_size}" 0
        make_pairs "${data_dir}/val" 2 "${lite_size}" 1
        make_pairs "${data_dir}/infer" 8 "${whole_size}" 2
        ;;
    whole_infer)
        make_pairs "${data_dir}/infer" 8 "${whole_size}" 2
        echo "whole_infer: put the converted weights where line 37 of ${FILENAME} says (infer_model), e.g."
        echo "  python tools/convert_weights.py -c <config> --src <official .pth/.pkl> --dst ./test_tipc/weights/${model_name}.pdparams"
        echo "  (official weights: megvii-model/HINet, chosj95/MIMO-UNet, swz30/MIRNet release pages)"
        ;;
    whole_train_whole_infer)
        make_pairs "${data_dir}/infer" 8 "${whole_size}" 2
        echo "whole_train_whole_infer trains the paper recipe; it needs the real dataset at the paths of the"
        echo "config named on line 16 of ${FILENAME} (layouts: README.md, section 3.2): SIDD for mirnet/hinet, GoPro for mimo_unet."
        ;;
    serving_infer|paddle2onnx_infer|ptq_infer)
        make_pairs "${data_dir}/infer" 2 "${lite_size}" 2
        ;;
    *)
        echo "prepare.sh: unknown MODE '${MODE}'" >&2
        exit 2
        ;;
esac
echo "prepare.sh: ${model_name} ${MODE} ready under ${data_dir}"

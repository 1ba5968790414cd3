"""Write the vamc build configs (fp16, int8 with percentile calibration) and vdsp JSON for a fixed-shape ONNX
(`ppir vacc-build-config`, deploy/vacc/build_config.py); the writing itself is `ppir.vacc.build`."""
from __future__ import annotations

import argparse
import sys

from ppir.cli import ArgumentParser, prog as cli_prog, settings_from
from ppir.vacc.build import CALIBRATE_MODES, PRECISIONS, BuildSettings, presets, write_build_configs


def build_parser(known: dict, prog: str | None = None) -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write the VastAI vamc build configs (one per precision: fp16, int8 with percentile "
                    "calibration) and the vdsp pre-processing JSON for an ONNX export of fixed input shape.",
        epilog="Presets (VastModelZOO recipes): " + "; ".join(f"{k}: {v['model']} {v['shape'][0]}x{v['shape'][1]}"
                                                       + (f" ({' '.join(v['overrides'])})" if v["overrides"] else "")
                                                       for k, v in known.items())
               + "\n\nExample:\n  python deploy/vacc/build_config.py --preset hinet_sidd --onnx "
                 "inference/hinet_sidd_vacc/model.onnx --calib_dir data/calib/hinet_sidd_256x256 "
                 "--out_dir deploy/vacc/build\n  vamc compile deploy/vacc/build/hinet_sidd_int8.yaml")
    p.add_argument("--onnx", required=True,
                   help="ONNX model to compile (tools/export_onnx.py output, e.g. "
                        "inference/hinet_sidd_vacc/model.onnx); checked when it exists, written into the config "
                        "as given")
    p.add_argument("--preset", choices=sorted(known), default=None,
                   help="VastModelZOO recipe: name, shape, calibration size")
    p.add_argument("--name", default=None, help="config name prefix (default: the preset's name)")
    p.add_argument("--shape", default=None, metavar="HxW", help="compiled input size (default: the preset's)")
    p.add_argument("--input_name", default="x", help="ONNX input name (default: %(default)s, ppir's)")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                   help="precisions to write (default: both)")
    p.add_argument("--calib_dir", default=None,
                   help="int8: calibration images (deploy/vacc/make_calib_set.py output; default data/calib/<name>)")
    p.add_argument("--calib_num", type=int, default=None,
                   help="int8: calibration images used (default: the preset's)")
    p.add_argument("--calibrate_mode", choices=CALIBRATE_MODES, default="percentile", help="(default: %(default)s)")
    p.add_argument("--workspace", default="./deploy_weights", help="vamc output folder (default: %(default)s)")
    p.add_argument("--out_dir", default="deploy/vacc/build",
                   help="where to write the configs (default: %(default)s)")
    p.add_argument("--allow_nearest", action="store_true",
                   help="accept a MIMO-UNet export with nearest resampling (VastModelZOO's recipe needs bilinear)")
    return p


def main(argv=None, prog: str | None = None) -> int:
    known = presets()
    args = build_parser(known, prog or cli_prog()).parse_args(argv)
    written, notes = write_build_configs(settings_from(BuildSettings, args), known)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 0

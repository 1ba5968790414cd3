"""Print a network's class, exact parameter count and MACs (multiply-accumulates) for one or more configs.

Examples:
  python tools/model_info.py -c configs/hinet_sidd_1x.yml
  python tools/model_info.py -c configs/mimo_unet_gopro.yml --shape 720x1280
  python tools/model_info.py -c configs/demo/hinet_synthetic.yml -o model.wf=16 --shape 1x3x128x128
  python tools/model_info.py -c configs/mirnet_sidd.yml configs/demo/mirnet_synthetic.yml --markdown
  python tools/model_info.py -c configs/mirnet_sidd.yml --proxy 1     # count at full size: minutes

MACs are "true" conv MACs: Conv2D (output elements x Cin/groups x k x k) and Conv2DTranspose (input elements
x Cout/groups x k x k), once per call; bias adds, activations, normalisation and the fixed resampling kernels
are not counted (see ppir/profiling.py). FLOPs are about 2 x MACs; the model-zoo "Flops(G)" columns are
2.22 x thop's MACs, which count transposed convolutions differently, so they are not comparable.

The default input is the config's export.input_shape if it sets one, else the network's seed shape
(1x3x256x256 for HINet and MIRNet, 1x3x360x640 for MIMO-UNet and MIMO-UNet+). The count runs at
(H/K, W/K) and is scaled exactly (--proxy; the default picks the largest K the network accepts), so even
the largest network takes seconds. --markdown prints the table that docs/models/*.md carry.
"""
import argparse
import json
import os

from ppir.cli import add_override_arg, ArgumentParser, flat_overrides

KIND_LABELS = {"conv": "conv", "conv_transpose": "transposed conv", "linear": "linear"}
MARKDOWN_HEADER = ("| config | network | parameters | input | MACs (G) | conv (G) | transposed conv (G) |\n"
                   "|---|---|---:|---|---:|---:|---:|")


def parse_args(argv=None):
    p = ArgumentParser(
        description="Parameters and MACs of the network a config describes (no weights needed).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("-c", "--config", nargs="+", required=True, metavar="CONFIG",
                   help="one or more configs (YAML); only their model: (and export:) sections are used")
    p.add_argument("--shape", default=None,
                   help="input H,W or N,C,H,W, e.g. 720x1280 or 1x3x256x256 (default: the config's "
                        "export.input_shape, else the network's seed shape)")
    p.add_argument("--proxy", default="auto", metavar="K",
                   help="count at (H/K, W/K) and scale exactly; 'auto' (default) takes the largest K the network "
                        "accepts, 1 counts at full size (slow for big inputs)")
    p.add_argument("--markdown", action="store_true", help="print one markdown table row per config")
    p.add_argument("--json", help="also write the results to this JSON file")
    add_override_arg(p)
    return p.parse_args(argv)


def _proxy(text):
    from ppir.errors import ConfigError

    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--proxy is 'auto' or an integer >= 1, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"--proxy is 'auto' or an integer >= 1, got {text!r}")
    return value


def shape_text(shape) -> str:
    return "x".join(map(str, shape))


def gmacs(value: int) -> str:
    return f"{value / 1e9:.3f}"


def describe(prof) -> str:
    m = prof.macs
    h, w = m.shape[2], m.shape[3]
    parts = " + ".join(f"{KIND_LABELS[k]} {gmacs(v)} G" for k, v in m.by_kind.items() if v)
    how = ("counted at full size" if m.proxy == 1 else
           f"counted at {h // m.proxy}x{w // m.proxy} and scaled by {m.proxy}x{m.proxy}, exactly")
    lines = [f"config:      {prof.source}",
             f"network:     {prof.name}",
             f"parameters:  {prof.params:,} ({prof.params / 1e6:.2f} M; shared parameters counted once)",
             f"input:       {shape_text(m.shape)} ({prof.shape_origin})",
             f"MACs:        {gmacs(m.total)} G = {m.total:,} ({parts}; {how})"]
    if m.constant:
        lines.append(f"             of which {m.constant:,} do not depend on the input size (layers after global "
                     f"pooling)")
    return "\n".join(lines)


def markdown_row(prof) -> str:
    kinds = prof.macs.by_kind
    return (f"| `{prof.source}` | {prof.name} | {prof.params:,} | {shape_text(prof.shape)} | "
            f"{gmacs(prof.macs.total)} | {gmacs(kinds['conv'])} | {gmacs(kinds['conv_transpose'])} |")


def main(argv=None):
    args = parse_args(argv)
    from ppir.profiling import model_profile

    proxy = _proxy(args.proxy)
    overrides = flat_overrides(args)
    profiles = []
    if args.markdown:
        print(MARKDOWN_HEADER, flush=True)
    for i, config in enumerate(args.config):
        prof = model_profile(config, shape=args.shape, proxy=proxy, overrides=overrides)
        prof.source = os.path.relpath(prof.source) if os.path.isabs(prof.source) else prof.source
        profiles.append(prof)
        if args.markdown:
            print(markdown_row(prof), flush=True)
        else:
            print(("\n" if i else "") + describe(prof), flush=True)
    if args.json:
        payload = [{"config": p.source, "network": p.name, "parameters": p.params, "input_shape": list(p.shape),
                    "shape_origin": p.shape_origin, "macs": p.macs.total, "macs_by_kind": p.macs.by_kind,
                    "macs_size_independent": p.macs.constant, "proxy": p.macs.proxy} for p in profiles]
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
        print(f"results: {args.json}")
    return 0

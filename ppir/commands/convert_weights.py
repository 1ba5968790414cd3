"""Convert official PyTorch checkpoints (or .npz / .pdparams) into Paddle .pdparams for a ppir network.

Reads the checkpoints as the authors released them, without PyTorch and without running any code from the
file: HINet .pth ({'params': ...}), MIMO-UNet .pkl ({'model': ...}), MIRNet .pth ({'state_dict': ...},
'module.' prefixes), bare torch state dicts, and .npz. Tensors are matched by name; anything missing,
unexpected or of the wrong shape is reported by name and fails the conversion unless --allow-partial.

Examples:
  python tools/convert_weights.py --config configs/hinet_sidd_1x.yml --src HINet-SIDD-1x.pth --dst hinet_sidd_1x.pdparams
  python tools/convert_weights.py --config configs/mimo_unetplus_gopro.yml --src MIMO-UNetPlus.pkl --dst mimo_plus.pdparams
  python tools/convert_weights.py --config configs/mirnet_sidd.yml --src model_denoising.pth --dst mirnet_sidd.pdparams
"""
import argparse

from ppir.cli import add_override_arg, ArgumentParser, flat_overrides


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="config of the network the weights belong to")
    p.add_argument("--src", required=True, help="checkpoint to read (.pth, .pkl, .pt, .npz, .pdparams)")
    p.add_argument("--dst", required=True, help="Paddle weights to write (.pdparams); written atomically")
    p.add_argument("--param-key", default=None,
                   help="key of the state dict inside the checkpoint (default: tries params, state_dict, model, ...)")
    p.add_argument("--allow-partial", action="store_true",
                   help="write what matches even if some tensors are missing, unexpected or mis-shaped")
    add_override_arg(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import ppir
    from ppir.errors import ConfigError
    from ppir.paths import output_file_problem

    problem = output_file_problem(args.dst)  # before reading anything: a run that cannot save is refused at once
    if problem:
        raise ConfigError(f"--dst: {problem}")

    model = ppir.build_model(args.config, flat_overrides(args))
    report = ppir.load_weights(model, args.src, allow_partial=args.allow_partial, param_key=args.param_key)
    ppir.save_weights(model, args.dst)
    print(f"read {args.src} ({report.description})")
    renamed = ""
    if report.renamed:
        src, dst = next(iter(report.renamed.items()))
        renamed = f", {len(report.renamed)} renamed by layer type (e.g. {src} -> {dst})"
    print(f"  {len(report.matched)} tensors matched{renamed}, {len(report.constants)} constant buffers checked")
    if not report.ok:
        print(f"  partial: {report.summary()}")
    print(f"wrote {args.dst} ({type(model).__name__}, {ppir.count_parameters(model):,} parameters)")
    return 0

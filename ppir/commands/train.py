"""Train a network from a config (recipe: datasets, loss, optimizer, lr_scheduler, metrics, train, val).

Examples:
  python tools/train.py -c configs/mirnet_sidd.yml
  python tools/train.py -c configs/demo/hinet_synthetic.yml -o train.iters=200 train.output_dir=output/try
  python tools/train.py -c configs/hinet_gopro.yml --resume                 # continue <output_dir>/latest
  python tools/train.py -c configs/hinet_gopro.yml --resume output/hinet_gopro/checkpoints/iter_00200000
  python tools/train.py -c configs/hinet_sidd_0.5x.yml --pretrained HINet-SIDD-0.5x.pth -o train.iters=1000
  python -m paddle.distributed.launch --gpus 0,1 tools/train.py -c configs/mimo_unet_gopro.yml

Outputs (in train.output_dir): checkpoints/, latest and best (checkpoint folders; their model.pdparams works
with --weights of predict.py/eval.py/export), train.log, metrics.jsonl, config.yml, vdl/ (VisualDL).
A missing dataset, a bad config key or an unwritable output_dir is one line on stderr and exit code 2; a diverged
loss, or outputs that cannot be written any more mid-run, stop the run with one line (also in train.log) and exit 1.
--resume without a usable `latest` (deleted, incomplete) continues from the newest complete checkpoint, with a warning.
"""
import argparse

from ppir.cli import add_override_arg, ArgumentParser, flat_overrides


def parse_args(argv=None):
    p = ArgumentParser(
        description="Train a restoration network as a config describes. Runs are exactly reproducible "
                    "(same seed and batch size -> same weights, whatever num_workers) and resumable.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("-c", "--config", required=True, help="training config (YAML), e.g. configs/mirnet_sidd.yml")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                   help="continue a run: a checkpoint folder, or no value for <train.output_dir>/latest")
    p.add_argument("--pretrained", metavar="WEIGHTS",
                   help="start from these weights (any format: .pdparams, official .pth/.pkl, .npz); "
                        "same as -o train.pretrained=WEIGHTS")
    p.add_argument("--amp", action="store_true",
                   help="mixed precision (GPU; on a CPU a warning is printed and training runs in float32)")
    p.add_argument("--seed", type=int, help="random seed (same as -o train.seed=N)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines still go to train.log)")
    add_override_arg(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import ppir
    from ppir.engine.trainer import Trainer

    overrides = flat_overrides(args)
    if args.pretrained:
        overrides.append(f"train.pretrained={args.pretrained}")
    if args.amp:
        overrides.append("train.amp=true")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    cfg = ppir.load_config(args.config, overrides)
    Trainer(cfg, resume=args.resume, progress=not args.no_progress).train()
    return 0

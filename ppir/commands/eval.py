"""Evaluate weights on a config's validation/test dataset with its metrics (and its val: protocol).

Examples:
  python tools/eval.py -c configs/hinet_sidd_1x.yml --weights HINet-SIDD-1x.pth
  python tools/eval.py -c configs/hinet_gopro.yml --weights output/hinet_gopro/best --save-images 5
  python tools/eval.py -c configs/hinet_rain13k.yml --weights hinet_rain.pdparams --dataset test_rain100h
  python tools/eval.py -c configs/demo/mirnet_synthetic.yml --weights output/demo_mirnet/best --json res.json

Prints a table (input and restored scores), writes <output>/metrics.json with per-image values, and with
--save-images N the restored images plus side-by-side pictures (input | output | ground truth).
"""
import argparse
import os

from ppir.cli import add_override_arg, ArgumentParser, flat_overrides
from ppir.infer.backends import add_backend_arg


def parse_args(argv=None):
    p = ArgumentParser(
        description="Score a network on a dataset from a config (metrics: section; val: tile/grids options).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("-c", "--config", required=True, help="config (YAML) with model, datasets and metrics")
    p.add_argument("--weights", "--pretrained", dest="weights", required=True,
                   help="weights: .pdparams, a checkpoint folder (output/run/best), official .pth/.pkl, .npz "
                        "(--pretrained is the same flag, the name TIPC configs share with tools/train.py)")
    p.add_argument("--dataset", help="which datasets entry to evaluate (default: val.dataset, i.e. 'val')")
    p.add_argument("--output", help="folder for metrics.json and images (default: <train.output_dir>/eval)")
    p.add_argument("--json", help="also write the results JSON to this file")
    p.add_argument("--save-images", nargs="?", type=int, const=5, default=None, metavar="N",
                   help="save restored images and side-by-side pictures for the first N images (default 5)")
    p.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--no-input", action="store_true", help="do not score the degraded input")
    p.add_argument("--baselines", action="store_true",
                   help="also score classical methods, each with its parameter chosen on these very images: what "
                        "the network has to beat (OpenCV filters; for noise also blind BM3D when the optional bm3d "
                        "package is installed; for motion blur unsharp masking and oracle deconvolution with the "
                        "true kernel). Seconds per image too")
    add_backend_arg(p)
    add_override_arg(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import ppir
    from ppir.engine.evaluator import evaluate, format_table, write_json
    from ppir.sections import TrainOptions, ValOptions, options_from
    from ppir.data import build_dataset
    from ppir.config import require_sections
    from ppir.errors import ConfigError
    from ppir.metrics import MetricSet
    from ppir.paths import output_dir_problem, output_file_problem

    cfg = ppir.load_config(args.config, flat_overrides(args))
    require_sections(cfg, ("model", "datasets"), "evaluation")
    vopt = options_from(cfg, "val", ValOptions)
    name = args.dataset or vopt.dataset
    if not name:
        raise ConfigError(f"{cfg.source}: no dataset to evaluate: pass --dataset or set val.dataset")
    out_dir = args.output
    if not out_dir:
        train_dir = (cfg.get("train") or {}).get("output_dir") or TrainOptions.output_dir
        out_dir = os.path.join(train_dir, "eval")
    # the results are written after the whole evaluation: find an unwritable destination before it
    for flag, problem in (("--output" if args.output else "results folder (<train.output_dir>/eval; see --output)",
                           output_dir_problem(out_dir)),
                          ("--json", args.json and output_file_problem(args.json))):
        if problem:
            raise ConfigError(f"{flag}: {problem}")
    dataset = build_dataset(cfg, name)
    metrics = MetricSet(cfg.get("metrics") or [{"type": "PSNR"}, {"type": "SSIM"}])
    model = ppir.build_model(cfg)
    report = ppir.load_weights(model, args.weights)
    save_images = args.save_images if args.save_images is not None else vopt.save_images
    max_images = args.max_images if args.max_images is not None else vopt.max_images
    res = evaluate(model, dataset, metrics, tile=vopt.tile, tile_overlap=vopt.tile_overlap, grids=vopt.grids,
                   self_ensemble=vopt.self_ensemble, max_images=max_images, score_input=not args.no_input,
                   save_dir=os.path.join(out_dir, "images"), save_images=save_images, progress=True,
                   desc=f"eval {name}", backend=args.backend)
    protocol = []
    if vopt.tile:
        protocol.append(f"{'grids' if vopt.grids else 'tiles'} {vopt.tile}"
                        + ("" if vopt.grids else f" overlap {vopt.tile_overlap}"))
    if vopt.self_ensemble:
        protocol.append("x8 self-ensemble")
    title = (f"{type(model).__name__} on datasets.{name} ({type(dataset).__name__})"
             + (f", {', '.join(protocol)}" if protocol else "") + f"; weights {args.weights}")
    print(format_table(res, title))
    baselines = []
    if args.baselines:
        from ppir.baselines import best_filters, dataset_pairs, methods_for, missing_notes, text_rows

        degradation = getattr(dataset, "degradation", None)  # a SyntheticDataset's: the methods that fit it
        baselines = best_filters(dataset_pairs(dataset, max_images), metrics.metrics, methods_for(degradation))
        print("classical methods, each at its best parameter on these images:")
        print("\n".join(text_rows(baselines, metrics.names, width=max(10, *(len(n) + 2 for n in metrics.names)))))
        for note in missing_notes(degradation):
            print(note)
    payload = {"config": cfg.source, "weights": args.weights, "weights_info": report.description,
               "dataset": name, "dataset_type": type(dataset).__name__,
               "protocol": {"tile": vopt.tile, "tile_overlap": vopt.tile_overlap, "grids": vopt.grids,
                            "self_ensemble": vopt.self_ensemble},
               "metric_specs": [repr(m) for m in metrics.metrics], **res.as_dict()}
    if baselines:
        payload["baselines"] = [{"filter": b.name, "param": b.param, "value": b.value, "at_edge": b.at_edge,
                                 "seconds_per_image": b.seconds, **b.scores} for b in baselines]
    write_json(os.path.join(out_dir, "metrics.json"), payload)
    if args.json:
        write_json(args.json, payload)
    where = os.path.join(out_dir, "metrics.json")
    if res.saved:
        where += f"; {len(res.saved)} image(s) in {os.path.join(out_dir, 'images')}"
    print(f"results: {where}")
    return 0

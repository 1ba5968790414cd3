"""The --engine ray flags the commands share (`ppir predict`, `infer`, `infer-onnx`: a Ray Data actor pool;
`ppir serve`: Ray Serve replicas). Flags only: what they do is ppir/scaleout/. Light on purpose (no Ray, no
numpy), so every command's --help stays quick."""
from __future__ import annotations

ENGINES = ("local", "ray")


def add_ray_address_arg(parser) -> None:
    parser.add_argument("--ray-address", dest="ray_address", default=None, metavar="ADDR",
                        help="--engine ray: the cluster to join (HOST:PORT of its head, or 'auto' on one of its nodes); "
                             "default: a private Ray started in this process")


def add_engine_args(parser) -> None:
    """--engine, --workers, --ray-address of the batch commands."""
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: restore in this process (default); ray: an actor pool of --workers restorers on "
                             "Ray Data (a private Ray, or the cluster at --ray-address); a rerun skips images whose "
                             "output exists")
    parser.add_argument("--workers", type=int, default=2,
                        help="--engine ray: restoring actors, each with its own predictor (default: %(default)s)")
    add_ray_address_arg(parser)


# (flag, type, default, help) of `ppir serve --engine ray`: every one only matters with --engine ray
SERVE_OPTIONS = (
    ("--replicas", int, 1, "Serve replicas (default: %(default)s; see --min-replicas/--max-replicas)"),
    ("--min-replicas", int, None, "autoscale between this and --max-replicas (Serve's autoscaling_config)"),
    ("--max-replicas", int, None, "the upper bound of autoscaling (default: --replicas)"),
    ("--max-ongoing-requests", int, 4, "requests one replica holds at once, Serve's max_ongoing_requests "
                                       "(default: %(default)s)"),
    ("--max-batch-size", int, 4, "requests a replica restores together (serve.batch; images of one padded size "
                                 "share a network call; default: %(default)s)"),
    ("--batch-wait-ms", float, 5.0, "how long a replica waits for more requests to batch (default: %(default)s)"),
)


def add_serve_args(parser) -> None:
    """The --engine ray options of `ppir serve`."""
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: predictors in this process (default); ray: Ray Serve replicas, each with one "
                             "predictor, behind this process's HTTP front (a private Ray, or the cluster at "
                             "--ray-address)")
    for flag, kind, default, text in SERVE_OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=f"--engine ray: {text}")
    add_ray_address_arg(parser)

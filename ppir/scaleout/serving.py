"""``ppir serve --engine ray``: the local server's HTTP front over Ray Serve replicas.

The HTTP side is the local server itself (``ppir.serving.app`` on uvicorn, in the ``ppir serve`` process): both
request formats, every limit and refusal, /health and /metrics are the same code, so they give the same answers.
What changes is what a predictor of its pool is: instead of a backend, a `RemoteRestorer`, which sends the decoded
image to the ``ppir-restorer`` Serve deployment (``replica``) and waits for the restored one. The pool's threads
only wait on Ray, so there are as many as the replicas can take at once (replicas x max_ongoing_requests).

A replica that dies (``kill -9``, a lost node) fails the requests it held: they are answered 503 with Retry-After
(ServerBusy, reason ``replica_lost``), Serve starts a replacement, and ``ppir.serving.client`` retries.
"""
from __future__ import annotations

import types

from ..errors import ConfigError
from ..serving.protocol import RequestError, ServerBusy
from .cluster import cause_of, connect

APP_NAME = "ppir"


def replica_counts(args) -> tuple[int, int, int]:
    """(initial, min, max) replicas from the command line; ConfigError when they do not make sense."""
    low = args.min_replicas if args.min_replicas is not None else args.replicas
    high = args.max_replicas if args.max_replicas is not None else max(args.replicas, low)
    for name, value in (("replicas", args.replicas), ("max-replicas", high), ("max-ongoing-requests",
                        args.max_ongoing_requests), ("max-batch-size", args.max_batch_size)):
        if value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    if low < 0 or low > high:
        raise ConfigError(f"--min-replicas must be in 0..--max-replicas ({high}), got {low}")
    if args.batch_wait_ms < 0:
        raise ConfigError(f"--batch-wait-ms must be at least 0, got {args.batch_wait_ms:g}")
    return min(max(args.replicas, low), high), low, high


def deployment_options(args) -> dict:
    """Serve's options for the deployment: replicas (fixed, or autoscaling), max_ongoing_requests, and per
    replica --cpu-threads CPUs and one GPU with --use-gpu."""
    initial, low, high = replica_counts(args)
    actor = {"num_cpus": args.cpu_threads or 1}
    if args.use_gpu:
        actor["num_gpus"] = 1
    # a replica that cannot start (a bad model) fails the start at once instead of being retried 20 times
    options = {"max_ongoing_requests": args.max_ongoing_requests, "ray_actor_options": actor,
               "max_constructor_retry_count": 1,
               "logging_config": {"log_level": "WARNING"}}  # the front logs one line per request already
    if args.min_replicas is None and args.max_replicas is None:
        options["num_replicas"] = initial
    else:
        options["autoscaling_config"] = {"min_replicas": low, "max_replicas": high, "initial_replicas": initial,
                                         "target_ongoing_requests": max(1, args.max_ongoing_requests // 2)}
    return options


class RemoteRestorer:
    """What a predictor thread of the pool holds with --engine ray: called like an ImageRestorer (image in,
    uint8 image out, by ``ppir.serving.child.restore_png``), it restores on whichever replica Serve picks."""

    def __init__(self, handle, backend_name: str, budget: int = 0):
        self.handle = handle
        self.backend = types.SimpleNamespace(name=backend_name)
        # restore_png judges an upload's header against planner.budget before decoding it, as for a local
        # predictor: each replica's share of --max-memory (0 with --tile, where tiles bound the memory)
        self.planner = types.SimpleNamespace(budget=int(budget))

    in_child_process = False  # the replicas are Ray's; nothing of this process to stop

    def close(self) -> None:
        """Nothing to release here: Serve owns the replicas (`deploy`'s stop shuts them down)."""

    def __call__(self, img):
        from ray.exceptions import ActorUnavailableError, RayActorError
        from ray.serve.exceptions import BackPressureError

        try:
            status, value = self.handle.restore.remote(img).result()
        except (RayActorError, ActorUnavailableError) as e:
            raise ServerBusy(f"the replica restoring this request was lost ({type(e).__name__}); Serve replaces "
                             f"it", 1.0, "replica_lost") from None
        except BackPressureError:
            raise ServerBusy("every replica is at --max-ongoing-requests", 1.0, "replicas_busy") from None
        if status != "ok":
            raise RequestError(500, value)
        return value


def deploy(args, info, build, build_args: tuple):
    """Start (or join) Ray, run the deployment, wait until its replicas are up; (handle, backend name, stop).
    `stop()` removes the deployment and leaves Ray (a private Ray ends with it)."""
    initial, _, high = replica_counts(args)
    ray = connect(args.ray_address)
    from ray import serve

    from .replica import deployment

    app = deployment(**deployment_options(args)).bind(build, build_args, args.max_batch_size,
                                                      args.batch_wait_ms / 1000)
    try:
        serve.start(proxy_location="Disabled")  # the HTTP front is this process; no Serve proxy on any node
        handle = serve.run(app, name=APP_NAME, route_prefix=None)
        name = handle.backend_name.remote().result()
    except Exception as e:  # noqa: BLE001 - a replica that cannot start (bad model): one line, exit 2
        details = _deployment_messages()
        ray.shutdown()
        raise ConfigError(f"the Ray Serve deployment did not start: {cause_of(e, *details)}") from None

    def stop():
        try:
            serve.delete(APP_NAME)
        finally:
            ray.shutdown()

    replicas = f"{initial}" if initial == high else f"{initial} (autoscaling up to {high})"
    return handle, f"{name} on {replicas} Ray Serve replica(s)", stop


def _deployment_messages() -> list[str]:
    """What Serve says about the app and its deployments (a replica's start-up traceback, for one)."""
    from ray import serve

    try:
        app = serve.status().applications.get(APP_NAME)
    except Exception:  # noqa: BLE001 - only for the error message
        return []
    if app is None:
        return []
    return [app.message or ""] + [d.message or "" for d in app.deployments.values()]

"""The Ray Serve deployment of ``ppir serve --engine ray``: each replica holds one restorer (one predictor).

Imports Ray at module level: only ``ppir.scaleout.serving`` imports this module, after checking Ray is there.
Requests arrive as decoded images (the front has parsed, checked and decoded them with the local server's code);
``serve.batch`` collects the requests a replica receives within a few milliseconds, and the one per-image loop
(``ppir.infer.loop.restore_items``) restores them: images of one padded size share a network call, up to the
restorer's batch size, others run one after another. Each request gets ``("ok", uint8 image)`` or ``("fail",
message)``: a failure is that request's own, as in the local server.
"""
from __future__ import annotations

import asyncio

from ray import serve

from ..infer.loop import Item, restore_items
from ..serving.child import lower_priority

DEPLOYMENT = "ppir-restorer"


class RestorerReplica:
    def __init__(self, build, build_args: tuple, max_batch_size: int, batch_wait_s: float):
        lower_priority()  # a replica beside the HTTP front (one machine) must not starve it
        self.restorer = build(*build_args)
        self.restore.set_max_batch_size(max_batch_size)
        self.restore.set_batch_wait_timeout_s(batch_wait_s)

    def backend_name(self) -> str:
        return self.restorer.backend.name

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.005)
    async def restore(self, images: list) -> list:
        # off the replica's event loop: requests arriving meanwhile form the next batch
        return await asyncio.to_thread(self._restore_all, images)

    def _restore_all(self, images: list) -> list:
        names = [f"request {k}" for k in range(len(images))]
        items = [Item(name=n, source=n, load=lambda img=img: img) for n, img in zip(names, images)]
        done, errors = {}, []

        def report(item, restored, scores, saved):
            done[item.source] = restored

        restore_items(self.restorer, items, report=report, errors=errors.append)
        answers = []
        for name in names:
            if name in done:
                answers.append(("ok", done[name]))
            else:  # the loop's message is "<source>: inference failed (...)"
                why = next((e.split(": ", 1)[1] for e in errors if e.startswith(name + ":")), "inference failed")
                answers.append(("fail", why))
        return answers


def deployment(**options):
    """The deployment with `options` (num_replicas or autoscaling_config, max_ongoing_requests,
    ray_actor_options, ...)."""
    return serve.deployment(RestorerReplica, name=DEPLOYMENT, **options)

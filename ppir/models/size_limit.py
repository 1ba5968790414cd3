"""Sizes refused before anything is allocated: a network whose parameter count is absurd for this project.

`-o model.wf=100000` or `-o model.depth=40` would otherwise allocate gigabytes (or end in a MemoryError
traceback) before any message. The network is first built under `paddle.LazyGuard`, which creates the layers
and their parameter shapes without allocating or initialising a single weight (and draws nothing from paddle's
generator), so counting its parameters costs a fraction of a normal build.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, PPIRError, quote
from ..registry import MODELS

# The largest official configuration (HINet 1x) has 88.7 M parameters; training holds ~4 copies of the
# weights (gradients, Adam's two moments), so 250 M float32 parameters is ~4 GB before any activation.
MAX_PARAMETERS = 250_000_000


def lazy_parameter_count(spec: dict, source: str) -> int:
    """Parameters of the network `spec` describes, counted without allocating them; ConfigError when even
    the shapes cannot be made (e.g. a channel count past int32)."""
    from .. import _paddle  # noqa: F401 - sets the environment paddle reads on import
    import paddle

    try:
        with paddle.LazyGuard():
            model = MODELS.build(spec, "model", source)
    except PPIRError:
        raise
    except Exception as e:  # noqa: BLE001 - paddle's own shape errors: the sizes are impossible
        why = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(f"{source}: model: {spec.get('type')} cannot be built with "
                          f"{quote({k: v for k, v in spec.items() if k != 'type'})}: {type(e).__name__}: "
                          f"{why[:200]}") from None
    return sum(int(np.prod(p.shape, dtype=object)) for p in model.parameters())


def check_model_size(spec: dict, source: str, limit: int = MAX_PARAMETERS) -> int:
    """The parameter count of `spec`'s network; ConfigError (with the figure) when it exceeds `limit`."""
    count = lazy_parameter_count(spec, source)
    if count > limit:
        args = quote({k: v for k, v in spec.items() if k != "type"})
        raise ConfigError(f"{source}: model: {spec.get('type')} with {args} would have {count:,} parameters "
                          f"({count * 4 / 2**30:,.1f} GB of float32 weights), over the limit of {limit:,}; check "
                          f"its size arguments")
    return count

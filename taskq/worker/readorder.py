"""The order in which a worker reads its queues and their priority lanes (pure; no I/O).

A queue's lanes are always read highest first (see :mod:`taskq.priority`). Between queues,
``queue_order`` decides (see :class:`~taskq.worker.config.WorkerConfig`): None reads every
stream in one call, as a worker of one queue does; "strict" reads queue after queue in the order
given; "weighted" draws an order for each read, the first queue with weight n down to 1 for the
last. The rank of a stream orders the deliveries waiting for a run slot (lower first).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from taskq import priority
from taskq.worker.config import QueueOrder


def plan(queues: Iterable[str], configured: Sequence[str], order: QueueOrder | None,
         rng: random.Random | None = None) -> list[str]:
    """The queues and lanes of ``queues`` (the worker's streams to read now) in reading order.
    ``configured``: the worker's queues as given (their order is the strict order)."""
    position = {priority.base(q): i for i, q in enumerate(configured)}
    names = list(queues)
    if order == "weighted" and len(position) > 1:
        draw = _weighted_order(sorted(position, key=position.__getitem__), rng or _RNG)
        position = {q: i for i, q in enumerate(draw)}
    return sorted(names, key=lambda q: (position.get(priority.base(q), len(position)),
                                        priority.rank(q)))


_RNG = random.Random()


def _weighted_order(queues: list[str], rng: random.Random) -> list[str]:
    left = list(queues)
    weights = [float(len(queues) - i) for i in range(len(queues))]
    out: list[str] = []
    while left:
        (i,) = rng.choices(range(len(left)), weights=weights)
        out.append(left.pop(i))
        weights.pop(i)
    return out


def ranks(queues: Iterable[str], configured: Sequence[str],
          order: QueueOrder | None) -> dict[str, int]:
    """The rank of each of ``queues`` for waiting deliveries: in strict order the position of
    (queue, level); else the level alone (high 0, normal 1, low 2)."""
    if order == "strict":
        return {q: i for i, q in enumerate(plan(queues, configured, order))}
    return {q: priority.rank(q) for q in queues}


def sequential(queues: Sequence[str], order: QueueOrder | None) -> bool:
    """Whether reads go stream by stream (some queue has lanes, or an order was asked for)
    rather than in one call of every stream (one queue, or several with no order)."""
    if len(queues) <= 1:
        return False
    return order is not None or any(priority.is_lane(q) for q in queues)

"""Per-task metrics: histograms of queue wait and run time, and outcome counts by reason.

A worker counts in plain Python (:class:`TaskMetrics`: a bisect and a few list and dict
increments per task, no lock, no prometheus-client call) and serves the figures on its own
``/metrics`` at scrape time; every few seconds it adds what it counted since the last time to
the queue's task metrics hash in Redis (one script call per queue), from which the API's
``/metrics`` serves every worker's figures summed. The format of that hash is defined here,
with its writer (:meth:`TaskMetrics.increments`) and its reader (:func:`parse`).

Label cardinality is bounded: a task is labelled with its name only when the worker's registry
has it (never a name read from a payload), else ``(unknown)``; outcomes and reasons come from
fixed sets; the hash takes new fields only up to :data:`MAX_FIELDS`.

Field ``<task>\\x1f<series>\\x1f<label>`` -> integer:

    w / r   queue wait / run time; label: bucket index (``0`` .. ``len(BOUNDS_S)``, the last
            one +Inf; not cumulative) or ``sum`` (microseconds)
    o       outcome count; label ``<outcome>:<reason>`` (reason empty but for retried, dead)
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from taskq.codec import Message

BOUNDS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0, 300.0, 900.0, 3600.0)
"""Upper bounds of the histogram buckets, seconds (+Inf follows)."""
_BOUNDS_MS = tuple(b * 1000 for b in BOUNDS_S)
UNKNOWN = "(unknown)"
"""The task label of a task this worker does not know (or a message it could not read)."""
OTHER = "(other)"
"""The task label the API sums names under past :data:`MAX_TASKS` per queue."""
MAX_FIELDS = 20_000
"""The most fields a queue's task metrics hash takes (about 400 task names)."""
MAX_TASKS = 500
"""The most task names the API labels per queue; the rest are summed under :data:`OTHER`."""
OUTCOMES = ("succeeded", "cancelled", "retried", "dead", "expired")
SEP = "\x1f"


@dataclass(slots=True)
class Histogram:
    """Bucket counts (not cumulative; the last is +Inf) and the sum in microseconds."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_S) + 1))
    sum_us: int = 0

    def observe_ms(self, ms: float) -> None:
        self.counts[bisect_left(_BOUNDS_MS, ms)] += 1
        self.sum_us += int(ms * 1000)

    def add(self, other: Histogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.sum_us += other.sum_us

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs as Prometheus wants them, +Inf last."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip((*(repr(b) for b in BOUNDS_S), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


@dataclass(slots=True)
class TaskSeries:
    """The figures of one task in one queue."""

    wait: Histogram = field(default_factory=Histogram)
    run: Histogram = field(default_factory=Histogram)
    outcomes: dict[str, int] = field(default_factory=dict)  # "<outcome>:<reason>" -> count

    def add(self, other: TaskSeries) -> None:
        self.wait.add(other.wait)
        self.run.add(other.run)
        for k, n in other.outcomes.items():
            self.outcomes[k] = self.outcomes.get(k, 0) + n


class TaskMetrics:
    """What one worker counted, per (queue, task) (see the module). Its :meth:`ended` is a
    worker observer (:mod:`taskq.worker.observe`): called once per outcome, in the loop."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(n for n in names if SEP not in n)
        self.series: dict[tuple[str, str], TaskSeries] = {}
        self._flushed: dict[tuple[str, str], TaskSeries] = {}

    def ended(self, task_id: str, msg: Message | None, queue: str, outcome: str, reason: str,
              attempt: int, started_ms: int | None, error_type: str, error: str) -> None:
        task = msg.task if msg is not None and msg.task in self.names else UNKNOWN
        series = self.series.get((queue, task))
        if series is None:
            series = self.series[(queue, task)] = TaskSeries()
        key = outcome + ":" + reason
        outcomes = series.outcomes
        outcomes[key] = outcomes.get(key, 0) + 1
        if started_ms is not None and msg is not None:  # (Histogram.observe_ms, inlined)
            ms = time.time() * 1000 - started_ms
            ms = ms if ms > 0 else 0.0
            h = series.run
            h.counts[bisect_left(_BOUNDS_MS, ms)] += 1
            h.sum_us += int(ms * 1000)
            # the wait of a task sent straight to the stream, at its first delivery (a delayed,
            # retried, replayed or handed-back task has an id of its own: its wait from the
            # enqueue would count its delay)
            if attempt == 1 and msg.task_id is None:
                waited = started_ms - msg.enqueued_ms
                waited = waited if waited > 0 else 0
                h = series.wait
                h.counts[bisect_left(_BOUNDS_MS, waited)] += 1
                h.sum_us += waited * 1000

    def increments(self) -> dict[str, list[tuple[str, int]]]:
        """Per queue, the hash increments since the last :meth:`flushed` (nothing zero)."""
        out: dict[str, list[tuple[str, int]]] = {}
        for (queue, task), now in list(self.series.items()):
            before = self._flushed.get((queue, task)) or TaskSeries()
            incs = out.setdefault(queue, [])
            for name, h, h0 in (("w", now.wait, before.wait), ("r", now.run, before.run)):
                for i, (n, n0) in enumerate(zip(list(h.counts), h0.counts, strict=True)):
                    if n != n0:
                        incs.append((f"{task}{SEP}{name}{SEP}{i}", n - n0))
                if h.sum_us != h0.sum_us:
                    incs.append((f"{task}{SEP}{name}{SEP}sum", h.sum_us - h0.sum_us))
            for k, n in list(now.outcomes.items()):
                if n != before.outcomes.get(k, 0):
                    incs.append((f"{task}{SEP}o{SEP}{k}", n - before.outcomes.get(k, 0)))
        return {q: incs for q, incs in out.items() if incs}

    def flushed(self, queue: str, increments: Iterable[tuple[str, int]]) -> None:
        """Record that ``increments`` of ``queue`` (from :meth:`increments`) are in Redis."""
        for name, n in increments:
            task, series, label = name.split(SEP)
            before = self._flushed.get((queue, task))
            if before is None:
                before = self._flushed[(queue, task)] = TaskSeries()
            _apply(before, series, label, n)


def _apply(s: TaskSeries, series: str, label: str, n: int) -> None:
    if series == "o":
        s.outcomes[label] = s.outcomes.get(label, 0) + n
        return
    h = s.wait if series == "w" else s.run
    if label == "sum":
        h.sum_us += n
    else:
        h.counts[int(label)] += n


def parse(fields: Mapping[Any, Any]) -> dict[str, TaskSeries]:
    """A queue's task metrics hash (as HGETALL returns it) as series by task name; fields that
    do not fit the format are skipped. Past :data:`MAX_TASKS` names (by most outcomes), the
    rest are summed under :data:`OTHER`."""
    by_task: dict[str, TaskSeries] = {}
    for raw, raw_value in fields.items():
        name = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        parts = name.split(SEP)
        try:
            value = int(raw_value)
        except (TypeError, ValueError):
            continue
        if len(parts) != 3 or parts[1] not in ("w", "r", "o"):
            continue
        task, series, label = parts
        if series != "o" and label != "sum" and not (
                label.isdigit() and int(label) <= len(BOUNDS_S)):
            continue
        if series == "o" and label.split(":", 1)[0] not in OUTCOMES:
            continue
        s = by_task.get(task)
        if s is None:
            s = by_task[task] = TaskSeries()
        _apply(s, series, label, value)
    if len(by_task) <= MAX_TASKS:
        return by_task
    ranked = sorted(by_task.items(), key=lambda kv: -sum(kv[1].outcomes.values()))
    kept = dict(ranked[:MAX_TASKS - 1])
    other = TaskSeries()
    for _, s in ranked[MAX_TASKS - 1:]:
        other.add(s)
    kept[OTHER] = other
    return kept


def families(prefix: str, rows: Iterable[tuple[list[str], TaskSeries]],
             label_names: list[str]) -> list[Metric]:
    """Prometheus families of ``rows`` (label values, series): ``<prefix>_queue_wait_seconds``
    and ``<prefix>_run_seconds`` histograms, ``<prefix>_outcomes_total`` by outcome and
    reason."""
    wait = HistogramMetricFamily(
        f"{prefix}_queue_wait_seconds", "Time from enqueue to start, first deliveries of tasks "
        "sent straight to the stream (the producer's clock to the worker's)",
        labels=label_names)
    run = HistogramMetricFamily(
        f"{prefix}_run_seconds", "Time from an attempt's start to its outcome",
        labels=label_names)
    outcomes = CounterMetricFamily(
        f"{prefix}_outcomes", "Attempt outcomes: succeeded, cancelled, retried (reason: "
        "error, timeout, retry_requested), dead (reason: the dead-letter reason), expired",
        labels=[*label_names, "outcome", "reason"])
    for labels, s in rows:
        for family, h in ((wait, s.wait), (run, s.run)):
            if h.count:
                family.add_metric(labels, h.cumulative(), h.sum_us / 1e6)
        for key, n in sorted(s.outcomes.items()):
            outcome, _, reason = key.partition(":")
            outcomes.add_metric([*labels, outcome, reason], n)
    return [wait, run, outcomes]

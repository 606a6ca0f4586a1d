"""Rich tables of queues, workers, tasks and dead letters (shared by commands and ``watch``).

Ids and names are never cut (:mod:`taskq.cli.fit`): at a short width the other columns give way.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from taskq.admin import (
    ConsumerInfo,
    DeadLetter,
    DelayedTask,
    Failure,
    QueueInfo,
    WorkerInfo,
)
from taskq.cli.common import age, call_args, clip, duration, out
from taskq.cli.fit import Cell, Col, details, fitted
from taskq.records import TaskRecord


def queues_table(queues: Sequence[QueueInfo]) -> Table:
    cols = [Col("queue", whole=True), Col("length", 3, right=True),
            Col("in flight", right=True), Col("waiting (lag)", right=True),
            Col("delayed", 2, right=True), Col("dead", right=True),
            Col("consumers", 4, right=True), Col("oldest waiting", 5, right=True),
            Col("done/min", 6, right=True), Col("state", 1)]
    rows: list[list[Cell]] = []
    for q in queues:
        state = Text("paused", style="bold yellow") if q.paused else Text("active", style="green")
        rows.append([
            q.name, str(q.length), str(q.in_flight), str(q.lag), str(q.delayed),
            Text(str(q.dead), style="bold red" if q.dead else ""), str(q.consumers),
            duration(q.oldest_waiting_age_s), str(q.completed_last_minute), state,
        ])
    return fitted("Queues", cols, rows, width=out.width,
                  empty="no queues yet (nothing was ever enqueued with this --prefix)")


def queue_summary(q: QueueInfo) -> Table:
    rows = [
        ("state", "PAUSED" if q.paused else "active"),
        ("stream length", q.length), ("in flight (pending)", q.in_flight),
        ("waiting, not yet delivered (lag)", q.lag), ("delayed", q.delayed),
        ("dead letters", q.dead), ("consumers", q.consumers),
        ("oldest waiting task", duration(q.oldest_waiting_age_s)),
        ("completed, last minute", q.completed_last_minute),
        ("completed / retried / dead / lost (total)",
         f"{q.completed_total} / {q.retried_total} / {q.dead_total} / {q.lost_total}"),
        ("expired / deferred unknown (total)", f"{q.expired_total} / {q.deferred_total}"),
        ("waited for a rate/concurrency limit (total)", q.throttled_total),
    ]
    if q.priority_waiting:
        rows.append(("stream length by priority",
                     " / ".join(f"{lvl} {n}" for lvl, n in q.priority_waiting.items())))
    t = details(f"Queue {q.name}", [(name, str(value)) for name, value in rows])
    t.columns[1].justify = "right"
    return t


def consumers_table(consumers: Sequence[ConsumerInfo]) -> Table:
    cols = [Col("consumer", whole=True), Col("in flight", right=True),
            Col("idle", 1, right=True), Col("worker")]
    rows: list[list[Cell]] = [[c.name, str(c.pending), duration(c.idle_ms / 1000),
             Text("alive", style="green") if c.alive else Text("dead", style="bold red")]
            for c in consumers]
    return fitted("Consumers", cols, rows, width=out.width,
                  empty="no consumers: no worker has read this queue")


def delayed_table(delayed: Sequence[DelayedTask]) -> Table:
    cols = [Col("task id", whole=True), Col("task", 1), Col("runs"),
            Col("attempts so far", 2)]
    rows = [[d.task_id, d.task or "?", age(d.run_at_ms), str(d.attempts)] for d in delayed]
    return fitted("Next delayed tasks", cols, rows, width=out.width, empty="none")


def failures_table(failures: Sequence[Failure]) -> Table:
    cols = [Col("task id", whole=True), Col("task", 1), Col("status"), Col("attempts", 3),
            Col("when", 2), Col("error", 4)]
    rows = [[f.task_id, f.task or "?", f.status, str(f.attempts), age(f.failed_ms),
             f"{f.error_type or ''}: {clip(f.error or '', 60)}"] for f in failures]
    return fitted("Recent failures", cols, rows, width=out.width, empty="none")


def workers_table(workers: Sequence[WorkerInfo]) -> Table:
    cols = [Col("worker", whole=True), Col("host", 5), Col("pid", 6, right=True),
            Col("queues", 2), Col("concurrency", 7, right=True), Col("in flight", 1, right=True),
            Col("processed", 4, right=True), Col("failed", 3, right=True),
            Col("last heartbeat"), Col("state")]
    rows: list[list[Cell]] = []
    for w in workers:
        if not w.alive:
            state = Text("DEAD", style="bold red")
        elif w.stopping:
            state = Text("stopping", style="yellow")
        else:
            state = Text("alive", style="green")
        rows.append([w.id, w.host, str(w.pid or "-"), ",".join(w.queues), str(w.concurrency),
                     str(w.in_flight), str(w.processed), str(w.failed), age(w.heartbeat_ms),
                     state])
    return fitted("Workers", cols, rows, width=out.width, empty="no workers registered")


def tasks_table(tasks: Sequence[TaskRecord], title: str) -> Table:
    # running tasks that report progress get a column for it (taskq tasks --status running)
    with_progress = any(r.progress is not None for r in tasks)
    cols = [Col("task id", whole=True), Col("status"), Col("task", 1), Col("arguments", 5),
            Col("attempts", 2), Col("enqueued", 3)]
    if with_progress:
        cols.append(Col("progress", 1))
    cols.append(Col("error", 4))
    rows: list[list[Cell]] = []
    for r in tasks:
        when = age(r.run_at_ms) if r.run_at_ms else age(r.enqueued_ms)
        row: list[Cell] = [r.id, str(r.status), r.task or "?", call_args(r.args, r.kwargs, 40),
                           str(r.attempts), ("runs " if r.run_at_ms else "") + when]
        if with_progress:
            row.append(progress_text(r))
        row.append(clip(r.error, 50) if r.error else "")
        rows.append(row)
    return fitted(title, cols, rows, width=out.width, empty="no tasks")


def dead_table(letters: Sequence[DeadLetter]) -> Table:
    cols = [Col("dead id", whole=True), Col("task id", whole=True), Col("task", 1),
            Col("reason", 2), Col("attempts", 4), Col("failed", 3), Col("error", 5)]
    rows = [[d.id, d.task_id, d.task or "?", d.reason, str(d.attempts), age(d.failed_ms),
             f"{d.error_type}: {clip(d.error, 50)}"] for d in letters]
    return fitted("Dead letters (newest first)", cols, rows, width=out.width,
                  empty="no dead letters")


def progress_text(r: TaskRecord) -> str:
    """``42% resized 4/10`` for a task that reported progress, else empty."""
    if r.progress is None:
        return ""
    return f"{r.progress:.0%} {clip(r.progress_message or '', 40)}".strip()


def progress_table(tasks: Sequence[TaskRecord]) -> Table:
    """Running tasks that reported progress (``taskq watch``)."""
    cols = [Col("task id", whole=True), Col("task", 1), Col("progress"), Col("attempts", 3),
            Col("enqueued", 2)]
    rows: list[list[Cell]] = [[r.id, r.task or "?", progress_text(r), str(r.attempts),
                               age(r.enqueued_ms)] for r in tasks]
    return fitted("Running tasks with progress", cols, rows, width=out.width, empty="none")

"""Rich tables of queues, workers, tasks and dead letters (shared by commands and ``watch``)."""

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
from taskq.cli.common import age, call_args, clip, duration
from taskq.records import TaskRecord


def queues_table(queues: Sequence[QueueInfo]) -> Table:
    t = Table(title="Queues", title_justify="left")
    for col in ("queue", "length", "in flight", "waiting (lag)", "delayed", "dead",
                "consumers", "oldest waiting", "done/min", "state"):
        t.add_column(col, justify="left" if col in ("queue", "state") else "right")
    for q in queues:
        state = Text("paused", style="bold yellow") if q.paused else Text("active", style="green")
        t.add_row(
            q.name, str(q.length), str(q.in_flight), str(q.lag), str(q.delayed),
            Text(str(q.dead), style="bold red" if q.dead else ""), str(q.consumers),
            duration(q.oldest_waiting_age_s), str(q.completed_last_minute), state,
        )
    if not queues:
        t.caption = "no queues yet (nothing was ever enqueued with this --prefix)"
    return t


def queue_summary(q: QueueInfo) -> Table:
    t = Table(title=f"Queue {q.name}", title_justify="left", show_header=False)
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [
        ("state", "PAUSED" if q.paused else "active"),
        ("stream length", q.length), ("in flight (pending)", q.in_flight),
        ("waiting, not yet delivered (lag)", q.lag), ("delayed", q.delayed),
        ("dead letters", q.dead), ("consumers", q.consumers),
        ("oldest waiting task", duration(q.oldest_waiting_age_s)),
        ("completed, last minute", q.completed_last_minute),
        ("completed / retried / dead / lost (total)",
         f"{q.completed_total} / {q.retried_total} / {q.dead_total} / {q.lost_total}"),
    ]
    for name, value in rows:
        t.add_row(name, str(value))
    return t


def consumers_table(consumers: Sequence[ConsumerInfo]) -> Table:
    t = Table(title="Consumers", title_justify="left")
    for col in ("consumer", "in flight", "idle", "worker"):
        t.add_column(col, justify="right" if col in ("in flight", "idle") else "left")
    for c in consumers:
        t.add_row(c.name, str(c.pending), duration(c.idle_ms / 1000),
                  Text("alive", style="green") if c.alive else Text("dead", style="bold red"))
    if not consumers:
        t.caption = "no consumers: no worker has read this queue"
    return t


def delayed_table(delayed: Sequence[DelayedTask]) -> Table:
    t = Table(title="Next delayed tasks", title_justify="left")
    for col in ("task id", "task", "runs", "attempts so far"):
        t.add_column(col)
    for d in delayed:
        t.add_row(d.task_id, d.task or "?", age(d.run_at_ms), str(d.attempts))
    if not delayed:
        t.caption = "none"
    return t


def failures_table(failures: Sequence[Failure]) -> Table:
    t = Table(title="Recent failures", title_justify="left")
    for col in ("task id", "task", "status", "attempts", "when", "error"):
        t.add_column(col)
    for f in failures:
        t.add_row(f.task_id, f.task or "?", f.status, str(f.attempts), age(f.failed_ms),
                  f"{f.error_type or ''}: {clip(f.error or '', 60)}")
    if not failures:
        t.caption = "none"
    return t


def workers_table(workers: Sequence[WorkerInfo]) -> Table:
    t = Table(title="Workers", title_justify="left")
    for col in ("worker", "host", "pid", "queues", "concurrency", "in flight", "processed",
                "failed", "last heartbeat", "state"):
        t.add_column(col, justify="right" if col in ("pid", "concurrency", "in flight",
                                                     "processed", "failed") else "left")
    for w in workers:
        if not w.alive:
            state = Text("DEAD", style="bold red")
        elif w.stopping:
            state = Text("stopping", style="yellow")
        else:
            state = Text("alive", style="green")
        t.add_row(w.id, w.host, str(w.pid or "-"), ",".join(w.queues), str(w.concurrency),
                  str(w.in_flight), str(w.processed), str(w.failed), age(w.heartbeat_ms), state)
    if not workers:
        t.caption = "no workers registered"
    return t


def tasks_table(tasks: Sequence[TaskRecord], title: str) -> Table:
    t = Table(title=title, title_justify="left")
    # running tasks that report progress get a column for it (taskq tasks --status running)
    with_progress = any(r.progress is not None for r in tasks)
    for col in ("task id", "status", "task", "arguments", "attempts", "enqueued", "error"):
        t.add_column(col)
        if col == "enqueued" and with_progress:
            t.add_column("progress")
    for r in tasks:
        when = age(r.run_at_ms) if r.run_at_ms else age(r.enqueued_ms)
        cells = [r.id, str(r.status), r.task or "?", call_args(r.args, r.kwargs, 40),
                 str(r.attempts), ("runs " if r.run_at_ms else "") + when]
        if with_progress:
            cells.append(progress_text(r))
        t.add_row(*cells, clip(r.error, 50) if r.error else "")
    if not tasks:
        t.caption = "no tasks"
    return t


def dead_table(letters: Sequence[DeadLetter]) -> Table:
    t = Table(title="Dead letters (newest first)", title_justify="left")
    for col in ("dead id", "task id", "task", "reason", "attempts", "failed", "error"):
        t.add_column(col)
    for d in letters:
        t.add_row(d.id, d.task_id, d.task or "?", d.reason, str(d.attempts), age(d.failed_ms),
                  f"{d.error_type}: {clip(d.error, 50)}")
    if not letters:
        t.caption = "no dead letters"
    return t


def progress_text(r: TaskRecord) -> str:
    """``42% resized 4/10`` for a task that reported progress, else empty."""
    if r.progress is None:
        return ""
    return f"{r.progress:.0%} {clip(r.progress_message or '', 40)}".strip()


def progress_table(tasks: Sequence[TaskRecord]) -> Table:
    """Running tasks that reported progress (``taskq watch``)."""
    t = Table(title="Running tasks with progress", title_justify="left")
    for col in ("task id", "task", "progress", "attempts", "enqueued"):
        t.add_column(col)
    for r in tasks:
        t.add_row(r.id, r.task or "?", progress_text(r), str(r.attempts), age(r.enqueued_ms))
    if not tasks:
        t.caption = "none"
    return t

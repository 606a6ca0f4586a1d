"""Worker settings: command-line options, each also read from a ``TASKQ_`` environment variable."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LogFormat(StrEnum):
    """How the worker writes its log: text lines, or one JSON object per line."""

    text = "text"
    json = "json"


class QueueOrderOption(StrEnum):
    """How a worker of several queues reads them (see WorkerConfig.queue_order)."""

    strict = "strict"
    weighted = "weighted"


class WorkerSettings(BaseSettings):
    """Environment: TASKQ_APP, TASKQ_REDIS_URL, TASKQ_QUEUES, TASKQ_CONCURRENCY, ..."""

    model_config = SettingsConfigDict(env_prefix="TASKQ_", extra="ignore")

    app: str = Field("", description="the TaskQueue to serve, as module:attribute")
    redis_url: str | None = None
    queues: str = Field("", description="comma-separated queues (default: the app's queues)")
    queue_order: QueueOrderOption | None = None
    concurrency: int = 100
    processes: int = 1
    prefetch: int | None = None
    lease_ms: int = 6_000
    grace_s: float = 25.0
    metrics_port: int | None = Field(None, description="serve Prometheus metrics on this port")
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: LogFormat = Field(LogFormat.text, description="text or json")
    burst: bool = False
    max_tasks: int | None = None
    max_memory: int | None = Field(None, description="MB")
    unknown_grace_s: float = 300.0
    schedules: bool = Field(True, description="sync and fire the app's periodic schedules")

"""taskq: a durable task queue for Python web services, backed by Redis Streams."""

from __future__ import annotations

import logging

from taskq.codec import Message
from taskq.context import TaskContext, current_context
from taskq.errors import (
    BacklogFull,
    ConfigError,
    ContextMissing,
    DecodeError,
    InvalidOption,
    InvalidQueueName,
    LeaseLost,
    NotAMessage,
    NotReplicated,
    PayloadTooLarge,
    RedisAuthError,
    RedisCommandError,
    RedisFailure,
    RedisNotReady,
    RedisOutOfMemory,
    RedisPermissionError,
    RedisTimeout,
    RedisUnavailable,
    ResultTimeout,
    ResultUnavailable,
    Retry,
    TaskFailed,
    TaskNotFound,
    TaskNotRegistered,
    TaskqError,
    TaskValidationError,
    UniqueKeyReused,
    WorkerStartupError,
    WorkflowError,
    WorkflowNotFound,
)
from taskq.handle import SyncTaskHandle, TaskHandle
from taskq.lifecycle import TaskHooks, TaskOutcome
from taskq.periodic import CatchUp, Schedule
from taskq.queue import TaskQueue
from taskq.records import TERMINAL_STATUSES, TaskRecord, TaskStatus
from taskq.retry import RetryPolicy
from taskq.task import ContextTask, Task, TaskOptions
from taskq.worker import Worker, WorkerConfig
from taskq.workflow import (
    Chain,
    Group,
    Linked,
    Node,
    Step,
    StepFailure,
    StepState,
    SyncWorkflow,
    Workflow,
    WorkflowStatus,
    chain,
    chord,
    group,
    link,
    start_workflow,
    start_workflow_sync,
)

__all__ = [
    "TERMINAL_STATUSES",
    "BacklogFull",
    "CatchUp",
    "Chain",
    "ConfigError",
    "ContextMissing",
    "ContextTask",
    "DecodeError",
    "Group",
    "InvalidOption",
    "InvalidQueueName",
    "LeaseLost",
    "Linked",
    "Message",
    "Node",
    "NotAMessage",
    "NotReplicated",
    "PayloadTooLarge",
    "RedisAuthError",
    "RedisCommandError",
    "RedisFailure",
    "RedisNotReady",
    "RedisOutOfMemory",
    "RedisPermissionError",
    "RedisTimeout",
    "RedisUnavailable",
    "ResultTimeout",
    "ResultUnavailable",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "Step",
    "StepFailure",
    "StepState",
    "SyncTaskHandle",
    "SyncWorkflow",
    "Task",
    "TaskContext",
    "TaskFailed",
    "TaskHandle",
    "TaskHooks",
    "TaskNotFound",
    "TaskNotRegistered",
    "TaskOptions",
    "TaskOutcome",
    "TaskQueue",
    "TaskRecord",
    "TaskStatus",
    "TaskValidationError",
    "TaskqError",
    "UniqueKeyReused",
    "Worker",
    "WorkerConfig",
    "WorkerStartupError",
    "Workflow",
    "WorkflowError",
    "WorkflowNotFound",
    "WorkflowStatus",
    "chain",
    "chord",
    "current_context",
    "group",
    "link",
    "start_workflow",
    "start_workflow_sync",
]

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

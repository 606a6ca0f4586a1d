"""FastAPI integration: open the queue with the app, enqueue durably from routes, mount the
HTTP API.

    from fastapi import FastAPI
    from taskq.fastapi import ApiConfig, ApiKeys, DurableTasks, lifespan, taskq_router

    app = FastAPI(lifespan=lifespan(tq))
    config = ApiConfig(keys=ApiKeys.from_keys(admin=[KEY]))
    app.include_router(taskq_router(tq, config), prefix="/taskq")

    @app.post("/users")
    async def register(user: User, tasks: DurableTasks) -> User:
        tasks.add_task(send_welcome_email, user.email)   # in Redis before the response
        return user

    protect_docs(app, config)            # /openapi.json and /docs need a read key too
    install_access_log_redaction()       # no key-like query values in uvicorn's access log
"""

from __future__ import annotations

from taskq.integrations.access_log import RedactCredentials, install_access_log_redaction
from taskq.integrations.auth import ApiKeys, Role
from taskq.integrations.config import ApiConfig
from taskq.integrations.docs import protect_docs
from taskq.integrations.durable import DurableTaskList, DurableTasks, durable_tasks
from taskq.integrations.errors import add_exception_handlers
from taskq.integrations.lifespan import lifespan
from taskq.integrations.limits import BodyLimitMiddleware
from taskq.integrations.router import taskq_router

__all__ = [
    "ApiConfig",
    "ApiKeys",
    "BodyLimitMiddleware",
    "DurableTaskList",
    "DurableTasks",
    "RedactCredentials",
    "Role",
    "add_exception_handlers",
    "durable_tasks",
    "install_access_log_redaction",
    "lifespan",
    "protect_docs",
    "taskq_router",
]

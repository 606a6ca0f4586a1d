"""Tasks registered without ``name=`` (so named ``module.qualname``), for the short-name
tests: ``send_email`` is ambiguous (this module's and the ``billing`` namespace's), ``welcome``
is the tail of an explicit name, ``resize_image`` is unique."""

from __future__ import annotations

import os

from taskq import TaskQueue


async def send_email(to: str) -> str:
    return to


async def resize_image(path: str, width: int = 100) -> str:
    return f"{path}@{width}"


async def welcome_new_user(user_id: int) -> int:
    return user_id


class billing:  # noqa: N801  (a namespace, as a module would be)
    @staticmethod
    async def send_email(to: str) -> str:
        return to


def build(prefix: str, url: str | None = None) -> TaskQueue:
    app = TaskQueue(url, prefix=prefix)
    app.task(send_email)
    app.task(billing.send_email)
    app.task(queue="images")(resize_image)
    app.task(name="emails.welcome")(welcome_new_user)
    return app


tq = build(os.environ.get("TEST_PREFIX", "taskq"))

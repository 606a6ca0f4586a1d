"""Web framework integrations (FastAPI). Public names are re-exported by :mod:`taskq.fastapi`.

Modules: ``lifespan`` (open and close a TaskQueue with the app), ``durable`` (the durable
``BackgroundTasks`` stand-in), ``auth`` (API keys), ``limits`` (request body limits),
``errors`` (taskq errors to HTTP answers), ``schemas`` (HTTP models), ``idempotency``,
``routes_tasks``, ``routes_queues``, ``sse`` and ``router`` (the router factory).
"""

"""The HTTP service: settings, the app factory and /metrics around :mod:`taskq.fastapi`.

Run it with ``taskq api`` (or ``python -m taskq.service``), or ``uvicorn
taskq.service.app:app``; build it in code with :func:`taskq.service.app.create_app`.
"""

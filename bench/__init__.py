"""The benchmark harness: taskq against peer queues on a private Redis (``python -m bench``).

Imports nothing outside the standard library and redis-py at package level: the peers'
adapters (bench/peers/) import this package from inside the peers' own virtualenv.
"""

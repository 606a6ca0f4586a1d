"""The HTTP service's deployable entry point (``python -m api``): code in :mod:`taskq.service`."""

"""The worker process: ``python -m worker APP`` (also ``taskq worker APP``).

One process runs one :class:`taskq.Worker`; ``--processes N`` runs a supervisor that starts N
such processes, restarts any that dies, and forwards SIGTERM/SIGINT to them.
"""

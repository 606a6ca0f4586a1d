"""The fault suite: Jepsen-style checks of taskq's promise on one machine, loopback only.

Every accepted enqueue ends in exactly one terminal state (completed, or dead-lettered with a
reason); duplicates are bounded and counted; nothing is lost silently. Run it with
``python -m faults`` (quick profile) or ``python -m faults --full``; see docs/reliability.md.

Pieces: :mod:`faults.redis_server` (a private redis-server per scenario, killed and restarted on
the same port and data folder), :mod:`faults.workers` (real worker processes, respawned after
kills), :mod:`faults.app` (the tasks; each appends ``start``/``end`` lines to a per-process
file with O_APPEND writes), :mod:`faults.ledger` (the producer's record of every enqueue),
:mod:`faults.checker` (lost, unexpected, duplicated, and Redis invariants at the end).
"""

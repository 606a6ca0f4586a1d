"""The worker's deployable entry point in the repository and the image: ``python -m worker APP``.

A thin wrapper: the worker process, its supervisor and metrics live in :mod:`taskq.worker`
(``python -m taskq.worker``, ``taskq worker``); this folder is not installed as a package.
"""

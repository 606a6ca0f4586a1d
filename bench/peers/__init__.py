"""One adapter per queue. Each is run as ``python -m bench.peers.<name> <command>`` in the
interpreter that has that queue installed (the peers' virtualenv, or the project's for taskq).
The shared job and the command protocol are in :mod:`bench.peers._common`."""

"""The peers' virtualenvs (bench/.peers-venv/<name>): made with venv and pip on first use, never
touching the project's environment."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.systems import PEERS_VENV, VENVS, System


def ensure(names: set[str]) -> None:
    for name in sorted(names - {"project"}):
        venv = PEERS_VENV / name
        stamp = venv / ".installed"
        want = " ".join(VENVS[name])
        if stamp.exists() and stamp.read_text() == want:
            continue
        print(f"bench: installing peers into {venv} ({want})", file=sys.stderr, flush=True)
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *VENVS[name]], check=True)
        stamp.write_text(want)


_VERSIONS = """
import json, sys
from importlib.metadata import version, PackageNotFoundError
out = {}
for p in sys.argv[1:]:
    try:
        out[p] = version(p)
    except PackageNotFoundError:
        out[p] = None
print(json.dumps(out))
"""


def versions(system: System) -> dict[str, str | None]:
    r = subprocess.run([system.python, "-c", _VERSIONS, *system.packages],
                       capture_output=True, text=True, check=True)
    result: dict[str, str | None] = json.loads(r.stdout)
    return result

"""The README's install is typed: mypy in a user's own project sees taskq's task signatures.

setuptools' default editable install (an import-hook finder) hides the package from mypy;
a regular install and ``editable_mode=strict`` (a path-based link tree) do not."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import ROOT

_IGNORE = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "build", "dist", "results")

USER_APP = '''\
from taskq import TaskQueue

tq = TaskQueue(prefix="userapp")


@tq.task
async def send_email(to: str, subject: str = "") -> bool:
    return True


async def main() -> None:
    await send_email.enqueue(to="a@b.c")
    await send_email.enqueue(to=1)  # E: arg-type
'''


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "taskq-checkout"
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    return src


def _venv_with(tmp_path: Path, install: list[str]) -> Path:
    """A fresh venv holding taskq installed as ``install`` says; its dependencies are seen
    through a .pth line naming this venv's site-packages (offline, no copies)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", *install], check=True, capture_output=True, timeout=300)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout.strip()
    (Path(purelib) / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.parametrize("mode", ["install", "editable-strict"])
def test_user_project_is_type_checked_against_the_installed_taskq(
    source: Path, tmp_path: Path, mode: str
) -> None:
    install = ([str(source)] if mode == "install" else
               ["-e", str(source), "--config-settings", "editable_mode=strict"])
    python = _venv_with(tmp_path, install)
    project = tmp_path / "userproj"
    project.mkdir()
    (project / "app.py").write_text(USER_APP)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--python-executable", str(python), "app.py"],
        cwd=project, capture_output=True, text=True, timeout=300, check=False,
    )
    out = proc.stdout + proc.stderr
    expected = {(n, m.group(1)) for n, line in enumerate(USER_APP.splitlines(), 1)
                if (m := re.search(r"# E: (\S+)", line))}
    reported = {(int(m.group(1)), m.group(2)) for m in
                re.finditer(r"^app\.py:(\d+): error: .*\[([\w-]+)\]$", out, re.MULTILINE)}
    assert reported == expected, out  # not "Cannot find implementation" (import-not-found)

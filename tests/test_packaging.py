"""What a user installs and runs: the wheel holds the ``taskq`` package only (no top-level
``api``, ``worker`` or dev stack), and ``taskq worker`` / ``taskq api`` run taskq's own code
whatever the current directory holds."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from taskq.dashboard import ASSETS as DASHBOARD
from tests.api_fixtures import free_port
from tests.helpers import ROOT, wait_sync

BIN = Path(sys.executable).parent
MARK = "THE-PROJECT-OWN-MODULE-RAN"
# The build reads the sources only: copies of them, without caches, venvs and build output.
_IGNORE = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "build", "dist", "results")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "taskq"
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("taskq_streams-*.whl")  # the distribution name, not taskq's
    return built


def test_the_wheel_holds_the_taskq_package_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert next(iter(dist_info)).startswith("taskq_streams-")  # "taskq" on PyPI is someone else's
    assert tops - dist_info == {"taskq"}
    assert "taskq/service/app.py" in names  # the HTTP service ships inside taskq
    assert "taskq/lua/enqueue.lua" in names and "taskq/py.typed" in names
    assert "taskq/service/static/swagger-ui/swagger-ui-bundle.js" in names  # offline /docs
    dashboard = {n.removeprefix("taskq/dashboard/static/") for n in names
                 if n.startswith("taskq/dashboard/static/")}  # the dashboard, every file of it
    assert dashboard == {p.relative_to(DASHBOARD).as_posix() for p in DASHBOARD.rglob("*")
                         if p.is_file() and "__pycache__" not in p.parts}
    assert not [n for n in names if "stack_fake" in n or n.startswith("taskq/devstack")]


def test_installed_into_a_fresh_venv_only_taskq_lands(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    python = venv / "bin" / "python"
    # This venv's pip installs into the fresh one; --no-deps --no-index: offline and fast.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   timeout=120)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout.strip()
    landed = {p.name for p in Path(purelib).iterdir()}
    dist_info = {n for n in landed if n.startswith("taskq_streams-") and n.endswith(".dist-info")}
    assert len(dist_info) == 1, landed
    assert landed - dist_info == {"taskq"}, landed
    installed = Path(purelib) / "taskq"
    assert (installed / "service" / "app.py").is_file()
    # fakeredis (the optional extra taskq[testing]) is named only where memory:// loads it on
    # first use, and by the pytest plugin's warning filters for it
    assert {p.relative_to(installed).as_posix() for p in installed.rglob("*.py")
            if "fakeredis" in p.read_text()} == {"memory.py", "testing/plugin.py"}
    assert (installed / "testing" / "fast_forward.lua").is_file()
    assert (venv / "bin" / "taskq").is_file()  # the console script


@pytest.fixture
def hostile_project(tmp_path: Path) -> Path:
    """A user's project holding its own ``worker.py`` and ``api/main.py``: importing either
    (instead of taskq's) prints a marker and fails."""
    for path in ("worker.py", "api/__init__.py", "api/__main__.py", "api/main.py"):
        file = tmp_path / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"print('{MARK} {path}')\nraise SystemExit('{MARK} {path}')\n")
    return tmp_path


@pytest.mark.parametrize(("command", "options"), [
    ("api", ["--host", "--port", "--log-level", "module:attribute of the TaskQueue"]),
    ("worker", ["--queues", "--concurrency", "--processes", "--grace-s"]),
])
def test_process_commands_run_taskqs_own_code(hostile_project: Path, command: str,
                                              options: list[str]) -> None:
    taskq = BIN / "taskq"
    assert taskq.is_file(), "the taskq console script is not installed in this venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["COLUMNS"] = "200"
    done = subprocess.run([str(taskq), command, "--help"], check=False, cwd=hostile_project,
                          env=env, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert MARK not in output, output
    assert done.returncode == 0, output
    for option in options:
        assert option in output, (option, output)



def test_taskq_api_serves_the_projects_app_with_taskqs_service(hostile_project: Path,
                                                               redis_url: str) -> None:
    """The project's own ``api/`` is never imported; its tasks module is (from the directory)."""
    (hostile_project / "projtasks.py").write_text(
        "from taskq import TaskQueue\n"
        "tq = TaskQueue(prefix='pkgtest')\n"
        "@tq.task(name='hello')\n"
        "def hello(name: str) -> str:\n"
        "    return name\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env.update(TASKQ_AUTH_DISABLED="true", TASKQ_REDIS_URL=redis_url)
    log = hostile_project / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "taskq"), "api", "projtasks:tq", "--port", str(port)],
                                cwd=hostile_project, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        def registry() -> object:
            assert proc.poll() is None, log.read_text()
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/registry", timeout=2)
            except httpx.TransportError:
                return None
            assert r.status_code == 200, r.text
            return r.json()

        found = wait_sync(registry, timeout=30, what="taskq api up")
        assert "hello" in str(found), found
        assert MARK not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_testing_extra_installs_what_the_plugin_and_the_documented_tests_need() -> None:
    """``pip install 'taskq-streams[testing]'`` then ``pytest``: the plugin's fixtures need
    pytest, async tests pytest-asyncio, FastAPI's TestClient httpx (docs/testing.md)."""
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extra = project["project"]["optional-dependencies"]["testing"]
    names = {re.split(r"[\[<>=;]", req, maxsplit=1)[0].strip() for req in extra}
    assert {"fakeredis", "pytest", "pytest-asyncio", "httpx"} <= names, extra

"""docker-compose.yml, the Dockerfile and .dockerignore, checked statically (no Docker engine
here): the file parses, Redis is durable and never evicts, its commands are real entry points,
its environment names are the settings' names, two worker replicas share the API's image and
have a healthcheck, one setting (TASKQ_APP) picks the app, ``docker compose down`` needs no
variable, dependencies have their own layer and the build context leaves secrets out."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
from typing import Any

import pytest
import yaml

from taskq import TaskQueue
from taskq.errors import ConfigError
from taskq.service.app import PREFIX, create_app
from taskq.service.loader import load_app
from taskq.service.settings import ApiSettings
from taskq.worker.settings import WorkerSettings
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def interpolated(value: str) -> str:
    """``value`` as compose expands it with no variable set (``${X:-default}`` -> default)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def env_names(settings: type[Any]) -> set[str]:
    prefix = settings.model_config["env_prefix"]
    return {(prefix + name).upper() for name in settings.model_fields}


def test_redis_is_durable_never_evicts_and_has_a_healthcheck(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    cmd = redis["command"]
    assert cmd[0] == "redis-server"
    pairs = dict(zip(cmd[1::2], cmd[2::2], strict=True))
    assert pairs["--appendonly"] == "yes"
    assert pairs["--appendfsync"] in ("everysec", "always")
    assert pairs["--maxmemory-policy"] == "noeviction"
    assert redis["healthcheck"]["test"][-1] == "ping"
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_api_and_worker_share_one_image_and_two_workers_run(compose: dict[str, Any]) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert api["image"] == worker["image"]
    assert api["build"] == worker["build"] == "."
    assert worker["deploy"]["replicas"] == 2
    for service in (api, worker):
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_commands_are_real_entry_points(compose: dict[str, Any], service: str) -> None:
    cmd = compose["services"][service]["command"]
    assert cmd[:2] == ["python", "-m"]
    assert importlib.util.find_spec(cmd[2] + ".__main__") is not None
    env = compose["services"][service]["environment"]
    assert len(cmd) == 3  # no app in the command: TASKQ_APP names it
    assert isinstance(load_app(interpolated(env["TASKQ_APP"])), TaskQueue)


def test_environment_names_are_the_settings_names(compose: dict[str, Any]) -> None:
    api_env = set(compose["services"]["api"]["environment"])
    worker_env = set(compose["services"]["worker"]["environment"])
    assert api_env <= env_names(ApiSettings), api_env - env_names(ApiSettings)
    assert worker_env <= env_names(WorkerSettings), worker_env - env_names(WorkerSettings)
    assert "TASKQ_API_KEYS" in api_env  # authentication on; never disabled here
    assert "TASKQ_AUTH_DISABLED" not in api_env


def test_api_listens_where_it_is_published_and_checked(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    port = api["environment"]["TASKQ_PORT"]
    assert api["environment"]["TASKQ_HOST"] == "0.0.0.0"
    assert any(str(p).endswith(f":{port}") for p in api["ports"])
    probe = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{port}{PREFIX}/ready" in probe
    assert re.search(r"redis://redis:6379", api["environment"]["TASKQ_REDIS_URL"])


def test_dockerfile_installs_the_packages_and_runs_the_api() -> None:
    text = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", text, flags=re.M))
    # taskq, then the whole context (worker/, api/, examples/: see the .dockerignore test)
    assert {"taskq", "."} <= copied
    assert 'CMD ["python", "-m", "api"]' in text
    assert re.search(r"^USER (?!root)", text, flags=re.M)


def test_one_setting_picks_the_app_for_api_and_workers(compose: dict[str, Any]) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert api["environment"]["TASKQ_APP"] == worker["environment"]["TASKQ_APP"] \
        == "${TASKQ_APP:-examples.tasks:tq}"
    assert "examples" not in " ".join(api["command"] + worker["command"])
    # the Dockerfile copies the build context, not one named app folder
    assert not re.search(r"^COPY examples", (ROOT / "Dockerfile").read_text(), flags=re.M)


def test_compose_down_needs_no_variable_and_the_api_refuses_without_keys(
    compose: dict[str, Any]
) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"\$\{\w+:?\?", text)  # ${X:?...} fails every command, down too
    keys = compose["services"]["api"]["environment"]["TASKQ_API_KEYS"]
    assert interpolated(keys) == ""
    with pytest.raises(ConfigError, match="no API keys"):  # unset: the API will not start
        create_app(ApiSettings(app="examples.tasks:tq", api_keys=""))


def test_worker_healthcheck_probes_its_heartbeat(compose: dict[str, Any]) -> None:
    check = compose["services"]["worker"]["healthcheck"]["test"]
    assert check[:4] == ["CMD", "python", "-m", "worker"] and check[-1] == "--check"
    assert importlib.util.find_spec(check[3] + ".__main__") is not None


def test_dependencies_have_their_own_layer() -> None:
    lines = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines()
             if ln.startswith(("COPY", "RUN"))]
    deps = next(i for i, ln in enumerate(lines) if "requirements" in ln)
    assert lines[deps - 1] == "COPY pyproject.toml README.md ./"  # only what lists them
    code = next(i for i, ln in enumerate(lines) if ln.startswith("COPY taskq"))
    assert deps < code
    assert "pip install --no-deps ." in lines[code + 1]


def test_dockerignore_keeps_secrets_data_and_venvs_out() -> None:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]

    def ignored(path: str) -> bool:
        top = path.split("/", 1)[0]
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(top, p) for p in patterns)

    for path in (".data/api-key", ".data/redis/appendonlydir/x.aof", ".venv/bin/python",
                 ".git/HEAD", "taskq.egg-info/PKG-INFO", "bench/results/raw/x.json", ".env"):
        assert ignored(path), path
    for path in ("pyproject.toml", "README.md", "taskq/queue.py", "worker/__main__.py",
                 "api/__main__.py", "examples/tasks.py"):
        assert not ignored(path), path

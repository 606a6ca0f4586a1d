"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine here): the file
parses, Redis is durable and never evicts, its commands are real entry points, its environment
names are the settings' names, and two worker replicas share the API's image."""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import pytest
import yaml

from taskq import TaskQueue
from taskq.service.app import PREFIX
from taskq.service.loader import load_app
from taskq.service.settings import ApiSettings
from taskq.worker.settings import WorkerSettings
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


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
    app = env.get("TASKQ_APP") or cmd[3]
    assert isinstance(load_app(app), TaskQueue)


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
    assert {"taskq", "worker", "api", "examples"} <= copied
    assert 'CMD ["python", "-m", "api"]' in text
    assert re.search(r"^USER (?!root)", text, flags=re.M)

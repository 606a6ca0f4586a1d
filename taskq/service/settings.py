"""The HTTP service's settings, read from ``TASKQ_`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Environment: TASKQ_APP, TASKQ_REDIS_URL, TASKQ_API_KEYS, TASKQ_API_READ_KEYS, ..."""

    model_config = SettingsConfigDict(env_prefix="TASKQ_", extra="ignore")

    app: str = Field("", description="the TaskQueue to serve, as module:attribute")
    redis_url: str | None = Field(
        None, description="Redis URL, unless the TaskQueue was given one in code (see "
                          "taskq.url_choice)")
    api_keys: SecretStr = Field(SecretStr(""),
                                description="comma-separated admin API keys (16+ characters)")
    api_read_keys: SecretStr = Field(SecretStr(""),
                                     description="comma-separated read-only API keys")
    auth_disabled: bool = Field(False, description="turn authentication off (local dev only)")
    allowed_hosts: str = Field(
        "", description="comma-separated Host names answered while authentication is off, "
                        "besides localhost and IP addresses (DNS rebinding protection): "
                        "api.internal, .internal (and its subdomains), * (any)")
    metrics_public: bool = Field(False, description="serve /metrics without an API key")
    docs_public: bool = Field(False, description="serve /openapi.json and /docs without an "
                                                 "API key")
    dashboard: bool = Field(True, description="serve the web dashboard at /ui/ (its data "
                                              "still needs an API key)")
    sse_max_per_key: int = Field(16, ge=1, description="event streams open at once per API key")
    host: str = "127.0.0.1"
    port: int = 8000
    root_path: str = ""
    max_body_bytes: int = Field(1_048_576, ge=1)
    idempotency_ttl_s: float = Field(86_400.0, gt=0)
    wait_max_s: float = Field(60.0, gt=0)
    log_level: str = "INFO"

    def admin_keys(self) -> list[str]:
        return _split(self.api_keys)

    def read_keys(self) -> list[str]:
        return _split(self.api_read_keys)

    def allowed_host_names(self) -> tuple[str, ...]:
        return tuple(h.strip() for h in self.allowed_hosts.split(",") if h.strip())


def _split(secret: SecretStr) -> list[str]:
    return [k.strip() for k in secret.get_secret_value().split(",") if k.strip()]

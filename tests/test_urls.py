"""The one Redis URL parser (taskq.urls): every form, its errors, and redaction."""

from __future__ import annotations

import pytest

from taskq import TaskQueue
from taskq.connection import check_url, redact_url
from taskq.errors import ConfigError
from taskq.urls import Kind, parse, redact, single_url


def test_single_redis_forms() -> None:
    t = parse("rediss://app:s3cret@cache:6380/2")
    assert (t.kind, t.tls, t.nodes, t.db, t.username, t.password) == (
        Kind.SINGLE, True, (("cache", 6380),), 2, "app", "s3cret")
    assert parse("redis://h").nodes == (("h", 6379),)
    assert parse("unix:///run/redis.sock?db=3").path == "/run/redis.sock"
    assert parse("unix:///run/redis.sock?db=3").db == 3
    assert parse("memory://x").kind is Kind.MEMORY


def test_cluster_urls() -> None:
    t = parse("redis+cluster://u:p%40ss@n1:7000,n2:7001,[::1]:7002/")
    assert t.kind is Kind.CLUSTER and not t.tls
    assert t.nodes == (("n1", 7000), ("n2", 7001), ("::1", 7002))
    assert (t.username, t.password) == ("u", "p@ss")
    assert parse("rediss+cluster://n1").tls
    assert parse("rediss+cluster://n1").nodes == (("n1", 6379),)


def test_sentinel_urls() -> None:
    t = parse("redis+sentinel://:pw@s1:26379,s2/mymaster/3?sentinel_password=spw")
    assert t.kind is Kind.SENTINEL
    assert t.nodes == (("s1", 26379), ("s2", 26379))
    assert (t.service, t.db, t.password, t.sentinel_password) == ("mymaster", 3, "pw", "spw")
    assert parse("rediss+sentinel://s1/svc").tls
    assert parse("redis+sentinel://s1/svc").db == 0


@pytest.mark.parametrize(("bad", "why"), [
    ("redis+cluster://n1:7000/3", "only database 0"),
    ("redis+cluster://n1:7000,,n2:7001/", "empty host"),
    ("redis+cluster://n1:70000/", "1-65535"),
    ("redis+cluster://n1:x/", "1-65535"),
    ("redis+sentinel://s1:26379", "no Sentinel service"),
    ("redis+sentinel://s1:26379/svc/x", "not a number"),
    ("redis+sentinel://s1:26379/svc/0/extra", "too many path parts"),
    ("redis+sentinel://s1/svc?colour=blue", "unknown query option"),
    ("redis+clusterx://n1/", "the scheme must be one of"),
    ("http://h:6379/0", "the scheme must be one of"),
])
def test_malformed_urls_name_what_is_wrong_in_one_line(bad: str, why: str) -> None:
    with pytest.raises(ConfigError, match="malformed Redis URL") as refused:
        TaskQueue(bad)
    assert why in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ConfigError):
        check_url(bad)


def test_passwords_never_show() -> None:
    for url in ("redis+sentinel://u:topsecret@s1,s2/svc/0?sentinel_password=topsecret",
                "rediss+cluster://u:topsecret@n1:7000,n2:7001/", "redis://:topsecret@h:1/0"):
        assert "topsecret" not in redact(url)
        assert "topsecret" not in redact_url(url)
    for bad in ("redis+sentinel://:topsecret@s1:x/svc", "redis+cluster://:topsecret@n1/4",
                "redis+sentinel://s1/svc/0?sentinel_password=topsecret&x=1",
                "redis://:topsecret@h:99999/0"):
        with pytest.raises(ConfigError) as refused:
            parse(bad)
        assert "topsecret" not in str(refused.value), refused.value
    assert redact("redis+cluster://n1:7000,n2:7001/") == "redis+cluster://n1:7000,n2:7001/"


def test_single_url_of_a_node_keeps_credentials_and_tls() -> None:
    t = parse("rediss+cluster://u:p%40ss@n1:7000/")
    assert single_url(t, "10.0.0.2", 7001) == "rediss://u:p%40ss@10.0.0.2:7001/0"

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


def test_tls_options_for_every_kind() -> None:
    query = "ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_cert_reqs=required" \
            "&ssl_check_hostname=false"
    expected = {"ssl": True, "ssl_ca_certs": "/ca.pem", "ssl_certfile": "/c.pem",
                "ssl_keyfile": "/k.pem", "ssl_cert_reqs": "required", "ssl_check_hostname": False}
    for url in (f"rediss://h:6380/0?{query}", f"rediss+cluster://n1:7000,n2:7001/?{query}",
                f"rediss+sentinel://:pw@s1,s2/svc/1?sentinel_password=x&{query}"):
        assert parse(url).ssl_kwargs() == expected, url
    assert parse("rediss+cluster://n1/").ssl_kwargs() == {"ssl": True}
    assert parse("redis+cluster://n1/").ssl_kwargs() == {}


@pytest.mark.parametrize(("bad", "why"), [
    ("redis+cluster://n1/?ssl_ca_certs=/ca.pem", "ssl_ca_certs needs a TLS URL"),
    ("redis://h/0?ssl_certfile=/c.pem", "ssl_certfile needs a TLS URL"),
    ("redis+sentinel://s1/svc?ssl_keyfile=/k.pem", "ssl_keyfile needs a TLS URL"),
    ("rediss://h/0?ssl_ca_cert=/ca.pem", "unknown query option 'ssl_ca_cert'"),
    ("rediss+cluster://n1/?colour=blue", "unknown query option 'colour'"),
    ("rediss+sentinel://s1/svc?ssl_password=x", "unknown query option 'ssl_password'"),
    ("redis://h/0?colour=blue", "unknown query option 'colour'"),
    ("rediss://h/0?ssl_cert_reqs=maybe", "is not one of none, optional, required"),
    ("rediss://h/0?ssl_cert_reqs=Required", "is not one of none, optional, required"),
    ("rediss://h/0?ssl_check_hostname=off", "is not true or false"),
    ("rediss+cluster://n1/?ssl_check_hostname=perhaps", "is not true or false"),
    ("rediss+cluster://n1/?ssl_ca_certs=", "ssl_ca_certs is empty"),
    ("redis+cluster://n1/?db=2", "only database 0"),
])
def test_bad_query_options_are_named_in_one_line(bad: str, why: str) -> None:
    with pytest.raises(ConfigError, match="malformed Redis URL") as refused:
        parse(bad)
    assert why in str(refused.value) and "\n" not in str(refused.value), refused.value


def test_a_target_repr_shows_no_password() -> None:
    for url in ("rediss+sentinel://u:topsecret@s1/svc?sentinel_password=topsecret"
                "&ssl_ca_certs=/ca.pem", "rediss://:topsecret@h/0?ssl_ca_certs=/ca.pem",
                "redis+cluster://:topsecret@n1/"):
        t = parse(url)
        assert "topsecret" not in repr(t) and "topsecret" not in str(t)
    assert "ssl_password=***" in redact("rediss://h/0?ssl_password=topsecret")

"""Redis URLs: the one parser every entry point uses (library, worker, API, CLI, ``./dev up``).

Accepted forms (``[user:password@]`` optional everywhere; passwords are never printed)::

    redis://[user:password@]host[:port][/db]          one Redis (port 6379, db 0 by default)
    rediss://...                                       the same over TLS
    unix://[user:password@]/path/to/socket[?db=N]      one Redis on a Unix socket
    memory://[NAME]                                    an in-process stand-in (taskq.memory)
    redis+cluster://[user:password@]host:port[,host:port...][/]
    rediss+cluster://...                               a Redis Cluster (TLS); the hosts are
                                                       seeds: the rest is discovered; no db
    redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/db]
    rediss+sentinel://...                              the master of SERVICE, found through
                                                       these Sentinels (TLS to Redis and them)

For Sentinel, ``user:password@`` authenticates to Redis (the master); the Sentinels' own
credentials, when they have any, go in the query: ``?sentinel_password=...`` (and
``sentinel_username=...``). A port left out is 6379 (Cluster) or 26379 (Sentinel).

TLS URLs (``rediss``, ``rediss+cluster``, ``rediss+sentinel``) take redis-py's certificate
options in the query, under redis-py's names (:data:`TLS_OPTIONS`): ``ssl_ca_certs``,
``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs`` (none, optional, required) and
``ssl_check_hostname`` (true/false). A ``rediss+sentinel://`` URL uses them for the Sentinels
and for the master alike (both over TLS). Files they name are checked when a client is made
(:func:`check_files`), not here.

:func:`parse` turns a URL into a :class:`Target` or raises :class:`~taskq.errors.ConfigError`
in one line, naming what is wrong, with the password redacted (:func:`redact`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from taskq.errors import ConfigError

MEMORY = "memory://"


class Kind(StrEnum):
    """What a URL names."""

    SINGLE = "single"
    CLUSTER = "cluster"
    SENTINEL = "sentinel"
    MEMORY = "memory"


SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": (Kind.SINGLE, False),
    "rediss": (Kind.SINGLE, True),
    "unix": (Kind.SINGLE, False),
    "redis+cluster": (Kind.CLUSTER, False),
    "rediss+cluster": (Kind.CLUSTER, True),
    "redis+sentinel": (Kind.SENTINEL, False),
    "rediss+sentinel": (Kind.SENTINEL, True),
}
"""Scheme -> (kind, TLS); ``memory://`` is handled before these."""

_DEFAULT_PORT = {Kind.SINGLE: 6379, Kind.CLUSTER: 6379, Kind.SENTINEL: 26379}
_SECRET_QUERY = ("password", "sentinel_password", "ssl_password")

_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")  # as redis-py reads them
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
               "ssl_check_hostname")
"""Certificate options of TLS URLs (redis-py's names; every client kind takes them)."""
TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
"""The TLS options that name a file (checked by :func:`check_files`)."""
_CERT_REQS = ("none", "optional", "required")
_SINGLE_OPTIONS = ("db", "password", "username", "socket_timeout", "socket_connect_timeout",
                   "socket_keepalive", "retry_on_timeout", "health_check_interval",
                   "max_connections", "client_name")
"""Query options of a ``redis://``/``unix://`` URL that redis-py's ``from_url`` reads."""
_OTHER_OPTIONS = {Kind.SINGLE: _SINGLE_OPTIONS, Kind.CLUSTER: ("db",),
                  Kind.SENTINEL: ("sentinel_username", "sentinel_password")}
_Bad = Callable[[str], ConfigError]  # makes the one-line error of a malformed URL


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed Redis URL. ``nodes``: the host and port of one Redis, the Cluster's seed
    nodes, or the Sentinels; ``service``: the Sentinel service name; ``path``: a Unix socket."""

    url: str
    kind: Kind
    tls: bool = False
    nodes: tuple[tuple[str, int], ...] = ()
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    service: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls_options: tuple[tuple[str, str | bool], ...] = ()
    """The TLS options of the query (:data:`TLS_OPTIONS`), values checked, in URL order."""

    def __repr__(self) -> str:  # the URL redacted, never a password
        return f"Target({redact(self.url)!r}, kind={self.kind.value!r})"

    def ssl_kwargs(self) -> dict[str, str | bool]:
        """redis-py's keyword arguments for TLS (``ssl=True`` and the certificate options),
        or none for a URL without TLS."""
        return {"ssl": True, **dict(self.tls_options)} if self.tls else {}

    @property
    def scaled(self) -> bool:
        """Whether this is a Cluster or Sentinel URL (redis-py's ``from_url`` cannot take it)."""
        return self.kind in (Kind.CLUSTER, Kind.SENTINEL)


def is_memory(url: str) -> bool:
    return url.startswith(MEMORY)


def kind_of(url: str) -> Kind:
    """The kind of ``url`` by its scheme alone (no validation; :func:`parse` validates)."""
    if is_memory(url):
        return Kind.MEMORY
    scheme = url.partition("://")[0].lower()
    return SCHEMES.get(scheme, (Kind.SINGLE, False))[0]


def redact(url: str) -> str:
    """``url`` with its passwords (in the user part and the query) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<invalid url>" if "@" in url else url
    netloc, slash, tail = rest.partition("/")
    if not slash and "?" in netloc:  # redis://h?password=x (no path)
        netloc, _, tail = netloc.partition("?")
        tail, slash = "?" + tail, ""
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    path, qmark, query = tail.partition("?")
    if qmark:
        parts = []
        for item in query.split("&"):
            name, eq, _ = item.partition("=")
            parts.append(f"{name}=***" if eq and name in _SECRET_QUERY else item)
        query = "&".join(parts)
    return f"{scheme}://{userinfo}{at}{hosts}{slash}{path}{qmark}{query}"


def parse(url: str) -> Target:
    """The :class:`Target` of ``url`` (see the module for the forms), or a ConfigError."""
    if is_memory(url):
        return Target(url, Kind.MEMORY)
    shown = redact(url)

    def bad(why: str) -> ConfigError:
        return ConfigError(f"malformed Redis URL {shown!r}: {why}")

    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise bad("the scheme must be one of " + ", ".join(
            s + "://" for s in (*SCHEMES, "memory")))
    kind, tls = SCHEMES[scheme]
    if kind is Kind.SINGLE:
        return _single(url, scheme, tls, bad)
    netloc, _, tail = rest.partition("/")
    path, _, query_text = tail.partition("?")
    if "?" in netloc:
        netloc, _, query_text = netloc.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    nodes = tuple(_node(h, _DEFAULT_PORT[kind], bad) for h in hosts.split(","))
    query = parse_qs(query_text, keep_blank_values=True)
    tls_options = _options(query, kind, tls, bad)
    if kind is Kind.CLUSTER:
        words = [w for w in path.split("/") if w]
        if words not in ([], ["0"]):
            raise bad("a Redis Cluster has only database 0 (redis+cluster://host:port/)")
        if query.get("db", ["0"]) != ["0"]:
            raise bad("a Redis Cluster has only database 0 (no ?db=)")
        return Target(url, kind, tls, nodes, username=username, password=password,
                      tls_options=tls_options)
    words = [unquote(w) for w in path.split("/") if w]
    if not words:
        raise bad("no Sentinel service name (redis+sentinel://host:26379/SERVICE/db)")
    if len(words) > 2:
        raise bad("too many path parts (redis+sentinel://host:26379/SERVICE/db)")
    db = _db(words[1] if len(words) > 1 else "0", bad)
    return Target(url, kind, tls, nodes, db=db, username=username, password=password,
                  service=words[0],
                  sentinel_username=query.get("sentinel_username", [None])[-1] or None,
                  sentinel_password=query.get("sentinel_password", [None])[-1] or None,
                  tls_options=tls_options)


def _options(query: dict[str, list[str]], kind: Kind, tls: bool,
             bad: _Bad) -> tuple[tuple[str, str | bool], ...]:
    """Refuse an unknown query option (naming it) and a TLS option without TLS; the TLS
    options with their values checked."""
    known = (*_OTHER_OPTIONS[kind], *TLS_OPTIONS)
    for name in query:
        if name not in known:
            raise bad(f"unknown query option {name!r} (known: {', '.join(known)})")
    tls_options: list[tuple[str, str | bool]] = []
    for name in TLS_OPTIONS:
        if name not in query:
            continue
        if not tls:
            raise bad(f"{name} needs a TLS URL (rediss://, rediss+cluster://, "
                      "rediss+sentinel://)")
        value = query[name][-1]
        if not value:
            raise bad(f"{name} is empty")
        if name == "ssl_check_hostname":
            if value.lower() not in (*_TRUE, *_FALSE):
                raise bad(f"{name}={value!r} is not true or false")
            tls_options.append((name, value.lower() in _TRUE))
            continue
        if name == "ssl_cert_reqs" and value not in _CERT_REQS:
            raise bad(f"{name}={value!r} is not one of {', '.join(_CERT_REQS)}")
        tls_options.append((name, value))
    return tuple(tls_options)


def check_files(target: Target) -> None:
    """A :class:`ConfigError` in one line naming a TLS option whose file does not exist or
    cannot be read (checked when a client is made: redis-py would say only "No such file")."""
    for name, value in target.tls_options:
        if name not in TLS_FILES:
            continue
        path = str(value)
        if not os.path.isfile(path):
            raise ConfigError(f"Redis URL {redact(target.url)!r}: {name} {path!r}: no such file")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"Redis URL {redact(target.url)!r}: {name} {path!r}: the file "
                              "cannot be read (permissions)")


def _single(url: str, scheme: str, tls: bool, bad: _Bad) -> Target:
    """``redis://``, ``rediss://`` and ``unix://`` (redis-py reads them itself at connect)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise bad(str(exc)) from None
    query = parse_qs(parts.query, keep_blank_values=True)
    tls_options = _options(query, Kind.SINGLE, tls, bad)
    dbs = query.get("db", [])
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if scheme == "unix":
        if not parts.path or parts.path == "/":
            raise bad("no socket path (unix:///path/to/redis.sock)")
        return Target(url, Kind.SINGLE, False, path=parts.path, db=_db(dbs[-1], bad) if dbs
                      else 0, username=username, password=password)
    if not parts.hostname:
        raise bad("no host (redis://host:port/db)")
    if port == 0:
        raise bad("port 0")
    db_path = parts.path.strip("/")
    if db_path:
        dbs = [db_path, *dbs]
    for db in dbs:
        _db(db, bad)
    return Target(url, Kind.SINGLE, tls, ((parts.hostname, port or 6379),),
                  db=int(dbs[0]) if dbs else 0, username=username, password=password,
                  tls_options=tls_options)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None, unquote(password) if colon and password else None)


def _node(text: str, default_port: int, bad: _Bad) -> tuple[str, int]:
    """``host[:port]`` (``[::1]:port`` for IPv6) of one Cluster seed node or Sentinel."""
    text = text.strip()
    if not text:
        raise bad("an empty host in the host list (host1:port1,host2:port2)")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise bad(f"no host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise bad(f"the port of {text!r} is not a number in 1-65535")
    return host, int(port_text)


def _db(text: str, bad: _Bad) -> int:
    if not text.isdigit():
        raise bad(f"the database {text!r} is not a number")
    return int(text)


def single_url(target: Target, host: str, port: int) -> str:
    """A ``redis://`` (or ``rediss://``) URL for one node of ``target``, with its credentials
    (what redis-py's ``from_url`` and operators' tools take)."""
    auth = ""
    if target.username or target.password:
        user = quote(target.username or "", safe="")
        auth = f"{user}:{quote(target.password, safe='')}@" if target.password else f"{user}@"
    host_text = f"[{host}]" if ":" in host else host
    scheme = "rediss" if target.tls else "redis"
    return urlunsplit((scheme, f"{auth}{host_text}:{port}", f"/{target.db}", "", ""))

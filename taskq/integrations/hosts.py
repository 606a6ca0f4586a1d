"""No DNS rebinding while authentication is off: only known ``Host`` values are answered.

With authentication disabled, nothing but the network protects the API, and a browser is on the
network. A page of ``evil.example`` can make its own name resolve to ``127.0.0.1`` a moment
after it loaded (DNS rebinding); its scripts then talk to this API as the same origin: the
``Origin`` they send matches the ``Host`` they send (both ``evil.example:PORT``), so no
cross-site check can tell them apart, and they can read every answer. What gives them away is
the ``Host``: it names the attacker's domain, not this service.

So while authentication is off, a request is answered only when its ``Host`` is:

- ``localhost`` or a name under ``.localhost`` (browsers resolve these to the loopback address
  themselves, never through DNS);
- an IP address (``127.0.0.1``, ``[::1]``, ``10.0.0.5``...): a page can only be of the same
  origin as an address if it was loaded from that address, so no DNS name is involved;
- one of the names configured (``TASKQ_ALLOWED_HOSTS``): ``api.internal`` exactly,
  ``.internal`` for it and every name under it, or ``*`` for any (turns the check off, e.g.
  behind a proxy that checks ``Host`` itself).

Any other ``Host`` is answered 421 (Misdirected Request) with a message naming the setting. A
request without ``Host`` (HTTP/1.0) is not from a browser and passes. With API keys the check
does not apply: a rebinding page has no key.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

STATUS = 421
ANY = "*"


def host_name(host: str) -> str:
    """The name in a ``Host`` header value, without its port, lower case: ``[::1]:8000`` ->
    ``::1``; ``Example.COM.:80`` -> ``example.com``."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 literal, with or without a port
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normalized(allowed: Iterable[str]) -> tuple[str, ...]:
    """Configured entries as compared: trimmed, lower case, empty ones left out; a leading
    ``.`` (or ``*.``) is kept as ``.``: a domain and its subdomains."""
    out = []
    for given in allowed:
        entry = given.strip().lower()
        if not entry:
            continue
        if entry.startswith("*."):  # the usual spelling of "this domain's names"
            entry = entry[1:]
        out.append(entry if entry == ANY or entry.startswith(".")
                   else host_name(entry) or entry)
    return tuple(out)


def host_allowed(host: str | None, allowed: Iterable[str] = ()) -> bool:
    """Whether a request with this ``Host`` may be answered while authentication is off (see
    the module's doc); ``allowed`` as given by :func:`normalized`."""
    if host is None:
        return True
    name = host_name(host)
    if name == "localhost" or name.endswith(".localhost") or is_ip(name):
        return True
    for entry in allowed:
        if entry in (ANY, name):
            return True
        if entry.startswith(".") and (name == entry[1:] or name.endswith(entry)):
            return True
    return False


def refusal(host: str) -> HTTPException:
    shown = host[:100].encode("ascii", "backslashreplace").decode()
    return HTTPException(
        STATUS, f"this service does not answer for host {shown!r} while authentication is "
                "disabled (a protection against DNS rebinding): use localhost or an IP "
                "address, or add the name to TASKQ_ALLOWED_HOSTS (ApiConfig.allowed_hosts)")


def known_hosts_only(disabled: bool, allowed: Iterable[str] = ()
                     ) -> Callable[[Request], Awaitable[None]]:
    """A dependency for every route: 421 for an unknown ``Host`` while ``disabled`` (the
    authentication); nothing to check otherwise."""
    entries = normalized(allowed)

    async def check(request: Request) -> None:
        if not disabled:
            return
        host = request.headers.get("host")
        if not host_allowed(host, entries):
            raise refusal(host or "")

    return check


class KnownHostsOnly:
    """ASGI middleware: the same check for a whole app (the service puts it around every
    route: the API, ``/metrics``, the dashboard and the docs). Add it only while
    authentication is off."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = normalized(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"),
                    None)
        if host_allowed(host, self.allowed):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        error = refusal(host or "")
        body = json.dumps({"detail": error.detail}).encode()
        await send({"type": "http.response.start", "status": error.status_code,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

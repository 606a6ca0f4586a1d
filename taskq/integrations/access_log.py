"""Credentials never reach the access log: values of key-like query (and path) parameters are
redacted.

The API reads keys only from headers (``X-API-Key``, or ``Authorization: Bearer`` for
``/metrics``) and never from the query string; but a client may still put one there
(``?api_key=...``), and uvicorn's access log writes the whole request target.
:func:`install_access_log_redaction` adds :class:`RedactCredentials` to the ``uvicorn.access``
logger, which rewrites ``?api_key=s3cret`` as ``?api_key=[redacted]`` before any handler sees it.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[redacted]"
SECRET_NAME = re.compile(
    r"key|token|secret|passw|pwd|auth|signature|credential|session|jwt|bearer"
    r"|(?:^|[-_.])(?:sig|code|otp)$", re.IGNORECASE)
"""Names whose values are redacted: any containing a credential word (``apikey``,
``access_token``, ``X-Amz-Signature``...), or ``sig``, ``code`` (an OAuth code), ``otp``,
alone or as the last part of a name (``hmac_sig``, ``auth-code``)."""
_PATH_PARAM = re.compile(r"(;|%3b)((?:(?!%3b|%3d)[^;/?=])*)(=|%3d)((?:(?!%3b)[^;/?])*)",
                         re.IGNORECASE)
"""``;name=value`` in a path, ``;`` and ``=`` as such or percent-encoded."""


def is_secret_name(name: str) -> bool:
    """Whether a parameter named ``name`` (percent-encoded or not) holds a credential."""
    return SECRET_NAME.search(unquote_plus(name).strip()) is not None


def _redact_path(path: str) -> str:
    """``/x;token=s3cret/y`` -> ``/x;token=[redacted]/y``: path (matrix) parameters too."""
    if ";" not in path and "%3" not in path.lower():
        return path
    return _PATH_PARAM.sub(
        lambda m: f"{m[1]}{m[2]}{m[3]}{REDACTED}" if is_secret_name(m[2]) else m[0], path)


def redact_query(target: str) -> str:
    """``target`` (a path with its query string) with the values of credential-like query and
    path parameters replaced by ``[redacted]``."""
    path, sep, query = target.partition("?")
    path = _redact_path(path)
    if not sep:
        return path
    parts = []
    for item in query.split("&"):
        name, eq, _ = item.partition("=")
        parts.append(f"{name}={REDACTED}" if eq and is_secret_name(name) else item)
    return f"{path}?{'&'.join(parts)}"


class RedactCredentials(logging.Filter):
    """A filter for uvicorn's access logger: its records carry the request target as their
    third argument (``'%s - "%s %s HTTP/%s" %d'``); other records pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def install_access_log_redaction(logger_name: str = ACCESS_LOGGER) -> None:
    """Add :class:`RedactCredentials` to the access logger (once)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactCredentials) for f in logger.filters):
        logger.addFilter(RedactCredentials())

"""API keys: read-only or admin, sent in the ``X-API-Key`` header, compared in constant time.

Only SHA-256 digests of the keys are kept in memory after start. A presented key is hashed and
compared with every configured digest using :func:`hmac.compare_digest` (no early exit), so the
time taken says nothing about which key, or how much of one, matched. Keys never reach logs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import HTTPException, Security
from fastapi.security import APIKeyHeader

log = logging.getLogger(__name__)

HEADER = "X-API-Key"
MIN_KEY_LENGTH = 16


class Role(StrEnum):
    READ = "read"
    ADMIN = "admin"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """The keys the API accepts. ``disabled=True`` turns authentication off (say so loudly)."""

    admin: tuple[bytes, ...] = ()
    read: tuple[bytes, ...] = ()
    disabled: bool = False

    @classmethod
    def from_keys(cls, admin: Iterable[str] = (), read: Iterable[str] = ()) -> ApiKeys:
        admin_keys = [k.strip() for k in admin if k.strip()]
        read_keys = [k.strip() for k in read if k.strip()]
        for k in admin_keys + read_keys:
            if len(k) < MIN_KEY_LENGTH:
                raise ValueError(f"API keys must be at least {MIN_KEY_LENGTH} characters")
        return cls(tuple(map(_digest, admin_keys)), tuple(map(_digest, read_keys)))

    @classmethod
    def off(cls) -> ApiKeys:
        """No authentication at all: every caller is admin. For local development only."""
        return cls(disabled=True)

    @property
    def empty(self) -> bool:
        return not self.admin and not self.read

    def role_of(self, key: str | None) -> Role | None:
        """The role of a presented key, or None. Constant time in the key's content."""
        if self.disabled:
            return Role.ADMIN
        presented = _digest(key or "")
        is_admin = False
        is_read = False
        for d in self.admin:
            is_admin |= hmac.compare_digest(presented, d)
        for d in self.read:
            is_read |= hmac.compare_digest(presented, d)
        if key is None:
            return None
        if is_admin:
            return Role.ADMIN
        return Role.READ if is_read else None


_scheme = APIKeyHeader(name=HEADER, auto_error=False,
                       description="An API key; read-only keys cannot cancel, replay or purge.")


def require(keys: ApiKeys, role: Role) -> Callable[[str | None], Awaitable[Role]]:
    """A dependency that answers 401 without a valid key and 403 for a read key on admin."""

    async def check(key: str | None = Security(_scheme)) -> Role:
        got = keys.role_of(key)
        if got is None:
            raise HTTPException(401, "missing or invalid API key",
                                headers={"WWW-Authenticate": "ApiKey"})
        if role is Role.ADMIN and got is not Role.ADMIN:
            raise HTTPException(403, "this API key is read-only; an admin key is needed")
        return got

    return check

"""Security: a password and a least-privilege ACL user run the control scenario; TLS
(``rediss://``, a CA and a certificate made with openssl here) works and a wrong CA fails
cleanly; no password appears in any log line."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from faults import certs as certs_module
from faults import checker
from faults.harness import Env
from faults.ledger import OK, produce

ACL_USER = "taskq-app"


def acl_rules(prefix: str) -> list[str]:
    """The least a taskq producer and worker need: its own keys and channels, the stream,
    hash, sorted-set and script commands they use, nothing else (no CONFIG, no KEYS, no
    FLUSH*, no CLIENT KILL, no DEBUG)."""
    commands = (
        "ping time info hello auth client|setname select "
        "evalsha eval script|load script|exists "
        "xadd xreadgroup xack xdel xpending xclaim xautoclaim xrange xrevrange xlen "
        "xgroup|create xgroup|delconsumer xinfo|groups xinfo|consumers xinfo|stream "
        "hset hget hdel hmget hkeys hgetall hincrby hexists hlen "
        "zadd zrange zrangebyscore zrem zcard zscore "
        "sadd smembers exists set get del pexpire pttl expire incrby "
        "publish subscribe unsubscribe psubscribe punsubscribe"
    )
    return ["reset", "on", "resetkeys", f"~{{{prefix}:*", f"~{prefix}:*", "resetchannels",
            f"&{{{prefix}:*", "-@all", *(f"+{c}" for c in commands.split())]


async def _control(env: Env, url: str, n: int) -> None:
    tq = env.app(url)
    pool = env.pool(2, env.worker_env(url), concurrency=8)
    pool.start()
    await produce(env.ledger, tq, rate=200, seconds=n / 200, batch=10, ms=5)
    ok = len(env.ledger.jobs(OK))
    env.result.check(ok == len(env.ledger.entries),
                     f"only {ok} of {len(env.ledger.entries)} enqueues accepted: "
                     f"{dict(env.ledger.errors)}")
    await env.settle(60)
    # no fault: nothing runs twice, and no healthy job may be dead-lettered
    checker.report(env.result, env.verdict(), max_dup=0)
    env.result.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")
    denied = [ln for ln in pool.logs().splitlines() if "NOPERM" in ln or "noperm" in ln]
    env.result.check(not denied, f"permission denied in worker logs: {denied[:3]}")


def _no_secret(env: Env, secret: str, where: str) -> None:
    leaked = [p.name for p in env.folder.rglob("*.log")
              if secret in p.read_text(errors="replace")]
    env.result.check(not leaked, f"{where}: the password appears in {leaked}")


async def acl_user(env: Env) -> None:
    admin_pw, app_pw = secrets.token_hex(12), secrets.token_hex(12)
    server = env.redis(password=admin_pw)
    admin = env.admin()
    admin.execute_command("ACL", "SETUSER", ACL_USER, *acl_rules(env.prefix), f">{app_pw}")
    admin.close()
    url = f"redis://{ACL_USER}:{app_pw}@127.0.0.1:{server.port}/0"
    await _control(env, url, env.profile.n(300))
    # a wrong password is refused at once and logged without the password
    bad = f"redis://{ACL_USER}:wrong-{app_pw}@127.0.0.1:{server.port}/0"
    tq = env.app(bad)
    state = await env.ledger.enqueue(tq, "work", 1, ms=1, timeout=10)
    env.result.figures["wrong_password_enqueue"] = state
    env.result.check(state != OK, "an enqueue with a wrong password was accepted")
    pool = env.pool(1, env.worker_env(bad), respawn=False)
    pool.start()
    await env.until(lambda: "WRONGPASS" in pool.logs() or "invalid username" in pool.logs()
                    or pool.procs[0].popen.poll() is not None, 15, "wrong password noticed")
    env.result.figures["wrong_password_worker"] = (
        "exits" if pool.procs[0].popen.poll() is not None else "retries")
    await asyncio.sleep(0.5)
    _no_secret(env, app_pw, "ACL")
    _no_secret(env, admin_pw, "ACL")


def make_certs(folder: Path) -> tuple[Path, Path, Path, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    certs = certs_module.make_certs(folder)
    return certs.server_cert, certs.server_key, certs.ca, certs.other_ca


async def tls(env: Env) -> None:
    r = env.result
    pw = secrets.token_hex(12)
    cert, key, ca, other = await asyncio.to_thread(make_certs, env.folder / "certs")
    server = env.redis(password=pw, tls=(cert, key, ca))
    url = f"rediss://:{pw}@127.0.0.1:{server.port}/0?ssl_ca_certs={ca}"
    await _control(env, url, env.profile.n(300))
    wrong = f"rediss://:{pw}@127.0.0.1:{server.port}/0?ssl_ca_certs={other}"
    tq = env.app(wrong)
    state = await env.ledger.enqueue(tq, "work", 1, ms=1, timeout=10)
    r.figures["wrong_ca_enqueue"] = state
    r.check(state != OK, "an enqueue through a wrong CA was accepted")
    pool = env.pool(1, env.worker_env(wrong), respawn=False)
    pool.start()
    await env.until(lambda: "certificate verify failed" in pool.logs().lower()
                    or pool.procs[0].popen.poll() is not None, 15, "wrong CA noticed")
    r.figures["wrong_ca_worker"] = ("exits" if pool.procs[0].popen.poll() is not None
                                    else "retries")
    r.check("certificate verify failed" in pool.logs().lower(),
            "the worker's log does not say the certificate failed verification")
    _no_secret(env, pw, "TLS")

"""Hand-made mutants of the HTTP dead-letter and cancel routes.

mutmut leaves decorated functions alone, so it never mutates the route bodies (functions
decorated with ``@router.get``/``@router.post`` inside the router factories) nor
``_queue_errors`` (a ``@contextmanager``). These mutants stand in for it: each is applied alone
to a copy of the tree, the given tests run with ``-x``, and the mutant is killed when they fail.

    .venv/bin/python -m tests.hand_mutants tests/test_api_routes.py   # about 3 min on 2 cores
    .venv/bin/python -m tests.hand_mutants --part 0/2 tests/test_api_queues.py ...  # a share
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
Q = "taskq/integrations/routes_queues.py"
T = "taskq/integrations/routes_tasks.py"

MUTANTS: list[tuple[str, str, str]] = [  # (file, text, its replacement)
    (Q, "except (admin.QueueNotFound, admin.DeadLetterNotFound) as exc:",
     "except (admin.QueueNotFound,) as exc:"),
    (Q, "except (admin.QueueNotFound, admin.DeadLetterNotFound) as exc:",
     "except (admin.DeadLetterNotFound,) as exc:"),
    (Q, "raise HTTPException(404, str(exc)) from None",
     "raise HTTPException(400, str(exc)) from None"),
    (Q, "return None if dead_ids is None else [d for d in dead_ids if ids.is_entry_id(d)]",
     "return dead_ids"),
    (Q, "[d for d in dead_ids if ids.is_entry_id(d)]",
     "[d for d in dead_ids if not ids.is_entry_id(d)]"),
    (Q, "return None if dead_ids is None else", "return [] if dead_ids is None else"),
    (Q, "data = parse_json(body) if body.strip() else None",
     "data = parse_json(body) if body else None"),
    (Q, "return DeadSelection.model_validate({} if data is None else data)",
     'return DeadSelection.model_validate({"all": True} if data is None else data)'),
    (Q, '"loc": ("body", *e["loc"])', '"loc": e["loc"]'),
    (Q, "letters = await admin.dead_letters(tq, name, limit, task, before)",
     "letters = await admin.dead_letters(tq, name, 50, task, before)"),
    (Q, "letters = await admin.dead_letters(tq, name, limit, task, before)",
     "letters = await admin.dead_letters(tq, name, limit, None, before)"),
    (Q, "Query(ge=1, le=1000)] = 50", "Query(ge=0, le=1000)] = 50"),
    (Q, "Query(ge=1, le=1000)] = 50", "Query(ge=1, le=10000)] = 50"),
    (Q, "Query(ge=1, le=1000)] = 50", "Query(ge=1, le=1000)] = 10"),
    (Q, "return [codec.json_safe(d.to_dict()) for d in letters]",
     "return [d.to_dict() for d in letters]"),
    (Q, "letter = await admin.dead_letter(tq, name, dead_id) if ids.is_entry_id(\n"
        "                dead_id) else None",
     "letter = await admin.dead_letter(tq, name, dead_id)"),
    (Q, "        if letter is None:\n            raise HTTPException(404",
     "        if letter is None and False:\n            raise HTTPException(404"),
    (Q, 'f"no dead letter {dead_id!r} in queue {name!r}"',
     'f"no dead letter {name!r} in queue {dead_id!r}"'),
    (Q, "return codec.json_safe(letter.to_dict())", "return letter.to_dict()"),
    (Q, "r = await admin.replay_dead_letters(tq, name, _entry_ids(sel.ids), sel.task)",
     "r = await admin.replay_dead_letters(tq, name, sel.ids, sel.task)"),
    (Q, "r = await admin.replay_dead_letters(tq, name, _entry_ids(sel.ids), sel.task)",
     "r = await admin.replay_dead_letters(tq, name, _entry_ids(sel.ids), None)"),
    (Q, "r = await admin.replay_dead_letters(tq, name, _entry_ids(sel.ids), sel.task)",
     "r = admin.Replay(name, await admin.purge_dead(tq, name, _entry_ids(sel.ids), sel.task))"),
    (Q, "return Replayed(queue=name, replayed=r.replayed,",
     "return Replayed(queue=name, replayed=1,"),
    (Q, "replayed=r.replayed, workflow_steps=r.workflow_steps,",
     "replayed=r.replayed,"),
    (Q, "kept=[KeptLetter(**k.to_dict()) for k in r.kept])", ")"),
    (Q, '@router.post("/queues/{name}/dead/replay", dependencies=admin_only,',
     '@router.post("/queues/{name}/dead/replay", dependencies=read,'),
    (Q, "n = await admin.purge_dead(tq, name, _entry_ids(sel.ids), sel.task)",
     "n = await admin.purge_dead(tq, name, sel.ids, sel.task)"),
    (Q, "n = await admin.purge_dead(tq, name, _entry_ids(sel.ids), sel.task)",
     "n = await admin.purge_dead(tq, name, _entry_ids(sel.ids), None)"),
    (Q, "n = await admin.purge_dead(tq, name, _entry_ids(sel.ids), sel.task)",
     "n = await admin.purge_dead(tq, name, None, None)"),
    (Q, "return Purged(queue=name, purged=n)", "return Purged(queue=name, purged=0)"),
    (Q, '@router.post("/queues/{name}/dead/purge", dependencies=admin_only,',
     '@router.post("/queues/{name}/dead/purge", dependencies=read,'),
    (Q, '@router.get("/queues/{name}/dead", dependencies=read,',
     '@router.get("/queues/{name}/dead", dependencies=[],'),
    (Q, '@router.get("/queues/{name}/dead/{dead_id}", dependencies=read,',
     '@router.get("/queues/{name}/dead/{dead_id}", dependencies=[],'),
    (T, "outcome = await tq.cancel(check_id(task_id))", "outcome = await tq.cancel(task_id)"),
    (T, 'if outcome == "unknown":', 'if outcome != "unknown":'),
    (T, 'raise HTTPException(409, f"task {task_id} already ended {record.status}")',
     'raise HTTPException(404, f"task {task_id} already ended {record.status}")'),
    (T, 'raise HTTPException(409, f"task {task_id} already ended {record.status}")',
     'raise HTTPException(409, f"task {task_id} already ended")'),
    (T, "record = await tq.status(task_id)  # 404 when there is no such task",
     "record = TaskRecord(task_id, '', 'succeeded')  # type: ignore"),
    (T, "return Cancelled(id=task_id, outcome=outcome)",
     'return Cancelled(id=task_id, outcome="queued")'),
    (T, '@router.post("/tasks/{task_id}/cancel", dependencies=admin,',
     '@router.post("/tasks/{task_id}/cancel", dependencies=read,'),
    (Q, "letters = await admin.dead_letters(tq, name, limit, task, before)",
     "letters = await admin.dead_letters(tq, name, limit, task, None)"),
    (Q, "if before is not None and (not ids.is_entry_id(before) or before == FIRST_ID):",
     "if before is not None and ids.is_entry_id(before):"),
    (Q, "if before is not None and (not ids.is_entry_id(before) or before == FIRST_ID):",
     "if before is not None and not ids.is_entry_id(before):"),
    (Q, "if before is not None and (not ids.is_entry_id(before) or before == FIRST_ID):",
     "if False:"),
]


def copy_tree(to: Path) -> None:
    """The tracked and untracked (not ignored) files of the checkout, copied to ``to``."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="0/1", help="K/N: run every Nth mutant from K")
    parser.add_argument("tests", nargs="+")
    opts = parser.parse_args()
    k, n = (int(x) for x in opts.part.split("/"))
    survived = 0
    with tempfile.TemporaryDirectory(prefix="taskq-mutants-") as tmp:
        work = Path(tmp)
        copy_tree(work)
        for i, (path, old, new) in enumerate(MUTANTS):
            if i % n != k:
                continue
            source = work / path
            text = source.read_text()
            if text.count(old) != 1:
                print(f"{i:2d} stale: {old!r} is not in {path} once")
                return 2
            source.write_text(text.replace(old, new))
            try:  # the copy comes first on sys.path (python -m runs from its directory)
                run = subprocess.run(
                    [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                     *opts.tests], check=False, cwd=work, capture_output=True, text=True,
                    timeout=900)
            finally:
                source.write_text(text)
            verdict = {0: "survived", 1: "killed"}.get(run.returncode, f"exit {run.returncode}")
            survived += run.returncode == 0
            print(f"{i:2d} {verdict:8s} {Path(path).name}: {new.strip()[:80]!r}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())

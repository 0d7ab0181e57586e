"""The CLI's fast paths, end to end in real processes: read commands never build the graph
(nor import MLflow or the model libraries) and print what the graph path prints; a refused
``mpm approve`` is refused before the graph is resumed -- by the approval node's own
judgement -- and is in the durable audit trail; an accepted one still resumes the graph,
whose node records it, and the whole trail verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mpm.cli import render
from mpm.graph import audit
from tests.graph.helpers import REPO, approver_for, auto_answer, key_for, runner

EXAMPLE = REPO / "reference" / "examples" / "breast_cancer.yaml"
HEAVY = ("langgraph.graph", "langgraph.pregel", "mlflow", "sklearn", "langchain_core")

PROBE = """
import json, sys
from mpm.cli.main import app
code = 0
try:
    app(sys.argv[2:], prog_name="mpm")
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


def probe(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run ``mpm args`` in a fresh interpreter; (the process, its exit code and modules)."""
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, json.loads(out.read_text())


def waiting_for_approval(ws: Path, thread: str, **requirements: Any) -> dict[str, Any]:
    """A real thread of the governed graph, waiting for its first approval."""
    r = runner(ws)
    req = yaml.safe_load(EXAMPLE.read_text()) | requirements
    outcome = r.start(thread, {"requirements": req})
    while outcome.interrupts[0]["value"]["type"] == "open_questions":
        questions = outcome.interrupts[0]["value"]["questions"]
        outcome = r.answer(thread, "open_questions", {q["key"]: auto_answer(q) for q in questions})
    return outcome.interrupts[0]["value"]


def test_read_commands_build_no_graph_and_print_what_the_graph_path_prints(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    pending = waiting_for_approval(ws, "r1")
    w = ["-w", str(ws)]
    full = runner(ws)
    expected = {
        # nothing received and not yet applied (graph/inbox.py): "received" is null
        ("status", "r1"): render.outcome_json(full.snapshot("r1")) | {"received": None},
        ("approvals",): {
            "version": render.JSON_VERSION,
            "approvals": [
                render.approval_json(r) | {"received": None} for r in full.pending_approvals()
            ],
        },
        ("runs",): {"version": render.JSON_VERSION, "threads": full.threads()},
    }
    for command, want in expected.items():
        proc, seen = probe(tmp_path, *command, "--json", *w)
        assert seen["code"] == 0, proc.stderr
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == json.loads(
            json.dumps(want, default=str)
        ), command
        assert not [m for m in HEAVY if m in seen["modules"]], (command, seen["modules"])
    proc, seen = probe(tmp_path, "approvals", *w)  # the table, too
    assert seen["code"] == 0 and pending["approval_id"] in proc.stdout
    assert not [m for m in HEAVY if m in seen["modules"]]


def test_refused_approve_is_refused_before_resume_and_audited(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    pending = waiting_for_approval(ws, "r2")
    approval = pending["approval_id"]
    r = runner(ws)
    before = r.history("r2")
    key_for("mallory")  # a real key the identity directory binds -- but in no group
    proc, seen = probe(
        tmp_path, "approve", "r2", approval, "--as", "mallory", "-c", "x", "--json", "-w", str(ws)
    )
    assert seen["code"] == 2, proc.stderr
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])["decision"]
    assert verdict["accepted"] is False
    assert verdict["reason"].startswith("mallory is not a member of")
    # refused before the graph was resumed: not built, not one checkpoint more
    assert "langgraph.graph" not in seen["modules"] and "langgraph.pregel" not in seen["modules"]
    # ...and by the signer directories alone: no policy was parsed for it
    assert "mpm.governance.policy" not in seen["modules"], "a non-member needs no policy"
    assert r.history("r2") == before
    # ...and audited at once, by the node's own judgement, in the node's task's slot
    trail = audit.read_trail(ws / "runs" / "r2" / audit.TRAIL_FILE)
    refusal = trail[-1]
    assert (refusal["approver"], refusal["accepted"]) == ("mallory", False)
    assert refusal["reason"] == verdict["reason"]
    assert refusal["signature"] and refusal["key_fingerprint"]  # her key signed it: evidence
    task = next(
        t for t in _tasks(r, "r2") if any(i.value["approval_id"] == approval for i in t.interrupts)
    )
    assert refusal["slot"].startswith(f"{task.name}:{task.id}#precheck#")
    assert audit.verify(trail)[0]

    # a member who requested the project may not approve it: that refusal needs the
    # workflow (separation of duties), so the whole context judges it -- still no graph
    member = approver_for(pending, None)
    waiting_for_approval(ws, "r3", requested_by=member)
    before_r3 = r.history("r3")
    proc, seen = probe(
        tmp_path, "approve", "r3", approval, "--as", member, "-c", "mine", "-w", str(ws)
    )
    assert seen["code"] == 2, proc.stderr
    assert "separation of duties" in proc.stderr.replace("\n", " ")
    assert "langgraph.graph" not in seen["modules"] and "mpm.governance.policy" in seen["modules"]
    assert r.history("r3") == before_r3
    trail = audit.read_trail(ws / "runs" / "r3" / audit.TRAIL_FILE)
    assert (trail[-1]["approver"], trail[-1]["accepted"]) == (member, False)

    # an accepted decision still resumes the graph; its node records it, and copies the
    # pre-check refusal of its task into the checkpoint's chain
    requested_by = r.snapshot("r2").values["requirements"].get("requested_by")
    who = approver_for(pending, requested_by)
    proc, seen = probe(
        tmp_path, "approve", "r2", approval, "--as", who, "-c", "ok", "--wait", "-w", str(ws)
    )
    assert seen["code"] in (0, 1), proc.stderr
    assert "langgraph.graph" in seen["modules"]  # this one did resume the graph
    values = r.snapshot("r2").values
    assert values["approvals"][approval]["approver"] == who
    assert [(e["approver"], e["accepted"]) for e in values["audit"]][:2] == [
        ("mallory", False),
        (who, True),
    ]
    verified = subprocess.run(
        [sys.executable, "-m", "mpm", "audit", "r2", "--verify", "-w", str(ws)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _tasks(r: Any, thread: str) -> Any:
    with r.graph() as g:
        return g.get_state(r.config(thread)).tasks

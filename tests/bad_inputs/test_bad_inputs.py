"""The bad-input corpus (``cases.yaml``): every case is refused with one line on stderr
that names what is wrong, and the exit code the manifest states. Inputs refused before a
run starts (exit 2) leave the workspace, every existing thread and MLflow exactly as they
were; data that only the data stage can judge (exit 1) fails that stage, ends the run
partial with the reason in ``mpm status``, and touches no other thread."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mpm.cli.main import app
from tests.graph.helpers import (
    REPO,
    approver_for,
    auto_answer,
    decision,
    drive_to_completion,
    example,
    runner,
)
from tests.reliability.conftest import seed_workspace

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
CASES: list[dict[str, Any]] = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))
SUMMARY = re.compile(r"^\d+ polic(y|ies) valid, \d+ invalid$")
"""``mpm policies validate`` ends with a count; every other stderr line is an error."""
PWNED = Path("/tmp/mpm-pwned-by-yaml")
MLFLOW_TABLES = (
    "experiments",
    "runs",
    "tags",
    "params",
    "metrics",
    "registered_models",
    "model_versions",
    "logged_models",
    "trace_info",
)


# --------------------------------------------------------------------------- fingerprints


def _rows_digest(db: Path, query: str, *params: Any) -> str:
    if not db.exists():
        return "absent"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(query, params).fetchall()
    return hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()


def thread_digests(ws: Path) -> dict[str, str]:
    """Every checkpoint and pending write of every thread, hashed per thread."""
    db = ws / "checkpoints.db"
    with sqlite3.connect(db) as conn:
        threads = [t for (t,) in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]
    return {
        t: _rows_digest(db, "SELECT * FROM checkpoints WHERE thread_id = ?", t)
        + _rows_digest(db, "SELECT * FROM writes WHERE thread_id = ?", t)
        for t in threads
    }


def mlflow_digest(ws: Path) -> dict[str, str]:
    return {t: _rows_digest(ws / "mlflow.db", f"SELECT * FROM {t}") for t in MLFLOW_TABLES}  # noqa: S608


def file_digests(ws: Path) -> dict[str, str]:
    """Every file in the workspace with its content hash. SQLite files are compared by
    their rows (above); lock files by name only (a waiting process writes its pid)."""
    out = {}
    for path in sorted(ws.rglob("*")):
        rel = str(path.relative_to(ws))
        if not path.is_file() or rel.endswith(("-wal", "-shm", "-journal")):
            continue
        if path.suffix == ".db" or rel.startswith("locks/"):
            out[rel] = "present"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def fingerprint(ws: Path) -> dict[str, Any]:
    return {"files": file_digests(ws), "threads": thread_digests(ws), "mlflow": mlflow_digest(ws)}


# --------------------------------------------------------------------------- the workspace


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> dict[str, str]:
    """A workspace with three threads (two waiting for different approvals, one finished),
    tracked in MLflow, with the corpus's data files inside it."""
    base = tmp_path_factory.mktemp("bad-inputs")
    ws = seed_workspace(base / "ws", mlflow_template)
    shutil.copytree(FILES / "data", ws / "data")
    r = runner(ws, tracking=True)
    req = {"requirements": example("breast_cancer")}
    requested_by = req["requirements"]["requested_by"]

    def waiting_for_approval(thread: str, decide: int) -> Any:
        """Start ``thread``, answer its questions, grant ``decide`` approvals, stop at the next."""
        outcome = r.start(thread, req)
        while True:
            value = outcome.interrupts[0]["value"]
            if value["type"] == "open_questions":
                answers = {q["key"]: auto_answer(q) for q in value["questions"]}
                outcome = r.answer(thread, "open_questions", answers)
            elif decide:
                who = approver_for(value, requested_by)
                outcome = r.answer(
                    thread, "approval", decision(value, who), key=value["approval_id"]
                )
                decide -= 1
            else:
                return outcome

    alpha = waiting_for_approval("alpha", 0)
    beta = waiting_for_approval("beta", 2)  # waits for other approvals than alpha
    drive_to_completion(r, r.start("done", req))
    pending = alpha.interrupts[0]["value"]
    assert pending["approval_id"] not in {i["value"]["approval_id"] for i in beta.interrupts}
    return {
        "ws": str(ws),
        "tmp": str(base),
        "files": str(FILES),
        "alpha": "alpha",
        "beta": "beta",
        "done": "done",
        "alpha_pending": pending["approval_id"],
        "approver": approver_for(pending, requested_by),
    }


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def _values(case: dict[str, Any], corpus: dict[str, str], index: int) -> dict[str, str]:
    values = {**corpus, "new": f"new-{index}"}
    if case.get("policies"):
        target = Path(corpus["tmp"]) / "policies" / case["id"]
        if not target.exists():
            shutil.copytree(REPO / "reference" / "governance", target)
            for path in (FILES / "policies" / case["policies"]).iterdir():
                shutil.copyfile(path, target / path.name)
        values["policies"] = str(target)
    return values


def mpm_in_process(args: list[str]) -> Any:
    """``mpm ARGS`` through the same Typer app the console script runs."""
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: {result.exception!r}"
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def _check(case: dict[str, Any], values: dict[str, str], run: Any) -> None:
    ws = Path(values["ws"])
    assert run.returncode == case["exit"], (run.stdout, run.stderr)
    assert "Traceback" not in run.stdout + run.stderr
    assert not PWNED.exists(), "an input made mpm run a command"
    if case["exit"] == 2:
        lines = [ln for ln in run.stderr.splitlines() if ln.strip() and not SUMMARY.match(ln)]
        assert len(lines) == 1, f"expected one line on stderr, got:\n{run.stderr}"
        assert lines[0].startswith("error:"), lines[0]
        assert _fill(case["error"], values) in lines[0], lines[0]
        assert "secret-pw" not in run.stdout + run.stderr, "a credential was printed"
        return
    assert "partial" in run.stdout, run.stdout
    status = mpm_in_process(["status", values["new"], "-w", str(ws)])
    assert status.exit_code == 0
    assert "critical_failure" in status.stdout
    assert case["stage_error"] in " ".join(status.stdout.split()), status.stdout
    data = runner(ws).snapshot(values["new"]).values["results"]["data_acquisition"]
    assert data["status"] == "failed" and case["stage_error"] in data["error"]


@pytest.mark.parametrize(("index", "case"), list(enumerate(CASES)), ids=[c["id"] for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(
    index: int, case: dict[str, Any], corpus: dict[str, str]
) -> None:
    values = _values(case, corpus, index)
    ws = Path(values["ws"])
    before = fingerprint(ws)
    result = mpm_in_process([_fill(a, values) for a in case["args"]])

    class Run:  # the fields _check reads, as a subprocess would give them
        returncode, stdout, stderr = result.exit_code, result.stdout, result.stderr

    _check(case, values, Run)
    after = fingerprint(ws)
    if case["exit"] == 2:
        assert after == before, "a refused input changed the workspace"
        return
    new = values["new"]
    assert after["mlflow"] == before["mlflow"]
    assert {t: d for t, d in after["threads"].items() if t != new} == before["threads"]
    added = set(after["files"]) - set(before["files"])
    assert all(f.startswith((f"runs/{new}/", f"locks/{new}.lock")) for f in added), added
    assert {f: d for f, d in after["files"].items() if f in before["files"]} == before["files"]


SUBPROCESS_SAMPLE = [
    "approve-without-as",
    "requirements-yaml-syntax-error",
    "approve-approval-of-another-thread",
    "kickoff-postgres-checkpointer-unreachable",
    "data-path-escapes-workspace",
]


@pytest.mark.parametrize("case_id", SUBPROCESS_SAMPLE)
def test_console_script_refuses_the_same_way(case_id: str, corpus: dict[str, str]) -> None:
    """A sample through a real process (``python -m mpm``): what the in-process
    runner saw is what a person sees."""
    from tests.graph.helpers import mpm

    index, case = next((i, c) for i, c in enumerate(CASES) if c["id"] == case_id)
    values = {**_values(case, corpus, index), "new": f"new-sub-{index}"}
    before = fingerprint(Path(values["ws"]))
    run = mpm(*[_fill(a, values) for a in case["args"]], env={"MPM_TRACING": "0"})
    _check(case, values, run)
    if case["exit"] == 2:
        assert fingerprint(Path(values["ws"])) == before


def test_corpus_is_large_and_covers_every_area() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40
    areas = {i.split("-")[0] for i in ids}
    assert {"requirements", "policies", "kickoff", "approve", "data"} <= areas
    for case in CASES:
        assert case["exit"] in (1, 2) and ("error" in case) == (case["exit"] == 2), case["id"]

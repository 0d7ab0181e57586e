"""The deliverables of one real governed run: model documentation (md + html), ROI only
from stated assumptions, every number traced to MLflow or the requirements, approval rows
equal to the signed audit trail, and people's text inert wherever it is shown."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.graph.helpers import approver_for, auto_answer, decision, example, runner
from tests.graph.traced_numbers import (
    mlflow_haystack,
    policy_numbers,
    untraced,
    visible_text,
)

HOSTILE_NAME = "Credit <img src=x onerror=alert(1)> [click](javascript:alert(2)) \x1b[31m\u202e"
HOSTILE_COMMENT = (
    "<script>alert(3)</script> ![x](http://evil.example/p.png) | \x1b]0;pwn\x07 \u202eok"
)
ASSUMPTIONS = {
    "decisions_per_year": 20000,
    "value_per_correct_decision": 12.5,
    "cost_per_error": 40.0,
    "running_cost_per_year": 15000.0,
    "one_off_cost": 5000.0,
    "currency": "EUR",
}


def _drive(r: Any, outcome: Any) -> Any:
    """Answer every question and approve every approval, each decision signed with a
    hostile comment (which must stay inert everywhere it is shown)."""
    requested_by = (outcome.values.get("requirements") or {}).get("requested_by")
    for _ in range(60):
        if not outcome.interrupts:
            return outcome
        value = outcome.interrupts[0]["value"]
        if value["type"] == "open_questions":
            answers = {q["key"]: auto_answer(q) for q in value["questions"]}
            outcome = r.answer(outcome.thread_id, "open_questions", answers)
        else:
            signed = decision(value, approver_for(value, requested_by), comment=HOSTILE_COMMENT)
            outcome = r.answer(outcome.thread_id, "approval", signed, key=value["approval_id"])
    raise AssertionError("the run did not finish")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workspace = tmp_path_factory.mktemp("docs")
    req = example("credit_risk", project_name=HOSTILE_NAME, business_assumptions=ASSUMPTIONS)
    req["data_sources"][0]["rows"] = 1500
    r = runner(workspace, toolset="real", tracking=True)
    outcome = _drive(r, r.start("docs", {"requirements": req}))
    from mlflow import MlflowClient

    values = outcome.values
    files = values["deliverables"]["files"]
    return {
        "values": values,
        "workspace": workspace,
        "client": MlflowClient(values["mlflow"]["tracking_uri"]),
        "md": Path(files["model_documentation.md"]).read_text(encoding="utf-8"),
        "html": Path(files["model_documentation.html"]).read_text(encoding="utf-8"),
        "summary": Path(files["executive_summary.md"]).read_text(encoding="utf-8"),
        "dashboard": Path(values["governance"]["files"]["dashboard"]).read_text(encoding="utf-8"),
        "tmp": tmp_path_factory.mktemp("artifacts"),
    }


def test_documentation_has_every_sr11_7_section(run: dict[str, Any]) -> None:
    for heading in (
        "## 1. Purpose and intended use",
        "## 2. Data",
        "## 3. Methodology",
        "## 4. Performance against the success criteria",
        "## 5. Calibration",
        "## 6. Robustness",
        "## 7. Fairness",
        "## 8. Explainability",
        "## 9. Limitations",
        "## 10. Monitoring plan",
        "## 11. Governance",
        "## 12. Reproducibility",
    ):
        assert heading in run["md"], heading
    assert "### Attribute gender" in run["md"]  # per-group fairness numbers are rendered
    assert "mpm kickoff --requirements" in run["md"]


def test_performance_rows_carry_tracked_score_and_bootstrap_interval(run: dict[str, Any]) -> None:
    values, client = run["values"], run["client"]
    validation = client.get_run(values["results"]["model_validation"]["mlflow_run_id"]).data
    score = validation.metrics["test_roc_auc"]
    low, high = (
        validation.metrics["test_roc_auc_ci_low"],
        validation.metrics["test_roc_auc_ci_high"],
    )
    assert low < score < high and low >= 0.0 and high <= 1.0
    assert validation.params["bootstrap_n_resamples"] == "1000"
    row = re.search(
        r"\| Project success criterion \| requirements \| test roc_auc \| >= 0\.75 \| "
        r"([0-9.]+) \| ([0-9.]+) – ([0-9.]+) \| (yes|no) \|",
        run["md"],
    )
    assert row, run["md"]
    shown = [float(g) for g in row.groups()[:3]]
    assert shown == pytest.approx([score, low, high], abs=5e-5)
    assert row.group(4) == ("yes" if score >= 0.75 else "no")


def test_bootstrap_interval_is_a_real_resampling(run: dict[str, Any]) -> None:
    """Recompute the interval by hand (numpy resampling of the test rows, same predictions):
    it lands near the logged one, and its width is that of a real sampling distribution."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    values = run["values"]
    data = values["results"]["data_acquisition"]["outputs"]
    model = joblib.load(values["results"]["model_development"]["outputs"]["model_path"])
    test = pd.read_parquet(data["test_path"])
    y = test[data["target_column"]].to_numpy()
    proba = model.predict_proba(test[list(model.feature_names_in_)])[:, 1]
    rng = np.random.default_rng(7)
    scores = []
    for _ in range(400):
        rows = rng.integers(0, len(y), len(y))
        if len(np.unique(y[rows])) == 2:
            scores.append(roc_auc_score(y[rows], proba[rows]))
    mine = np.percentile(scores, [2.5, 97.5])
    ci = json.loads(Path(values["deliverables"]["files"]["bootstrap_intervals.json"]).read_text())
    logged = ci["intervals"]["roc_auc"]
    assert logged["estimate"] == pytest.approx(roc_auc_score(y, proba))
    assert logged["low"] == pytest.approx(mine[0], abs=0.02)
    assert logged["high"] == pytest.approx(mine[1], abs=0.02)


def test_roi_is_computed_from_the_stated_assumptions_only(run: dict[str, Any]) -> None:
    values, client = run["values"], run["client"]
    parent = client.get_run(values["mlflow"]["parent_run_id"]).data.metrics
    accuracy = client.get_run(values["results"]["model_validation"]["mlflow_run_id"]).data.metrics[
        "test_accuracy"
    ]
    baseline = parent["roi_baseline_accuracy"]
    a = ASSUMPTIONS
    incremental = (
        a["decisions_per_year"]
        * (accuracy - baseline)
        * (a["value_per_correct_decision"] + a["cost_per_error"])
    )
    cost = a["running_cost_per_year"] + a["one_off_cost"]
    assert parent["roi_incremental_annual_value"] == pytest.approx(incremental)
    assert parent["roi_first_year_cost"] == pytest.approx(20000.0)
    assert parent["roi_net_first_year_value"] == pytest.approx(incremental - cost)
    assert parent["roi_first_year"] == pytest.approx((incremental - cost) / cost)
    summary = run["summary"]
    assert f"| Incremental annual value | EUR {incremental:,.0f} |" in summary
    assert f"| ROI (first year) | {(incremental - cost) / cost:.0%} |" in summary
    assert "3,800,000" not in summary and "2,416" not in summary


def test_summary_and_documentation_show_the_fairness_failure_with_numbers(
    run: dict[str, Any],
) -> None:
    fairness = run["values"]["results"]["model_validation"]["outputs"]["fairness"]
    gender = fairness["attributes"]["gender"]
    dpd, eod = gender["demographic_parity_difference"], gender["equalized_odds_difference"]
    assert f"| gender | {dpd:.4f} | {eod:.4f} |" in run["summary"]
    assert f"demographic parity difference {dpd:.4f}" in run["md"]
    # the policy's limit beside the measurement, in both
    assert re.search(
        r"Policy limit \(Ethical AI\): Equalized odds difference <= 0\.1, measured", run["summary"]
    )
    assert "Ethical AI — Equalized odds difference: limit <= 0.1, measured" in run["md"]
    # a threshold is shown as written only when it is a comparison and numbers
    from mpm.graph.reports import _env

    shown = _env().from_string("{{ t | threshold }}")
    assert shown.render(t="<= 0.1") == "<= 0.1"
    assert shown.render(t="<e1 onload=x>") == "&lt;e1 onload=x&gt;"


def test_summary_says_roi_not_estimated_without_assumptions() -> None:
    from mpm.graph import reports
    from mpm.graph.state import ProjectRequirements

    req = ProjectRequirements.model_validate(example("credit_risk"))
    roi = reports.roi_estimate(req, 0.91, 0.72)  # accuracies measured, no assumptions
    assert roi == {"estimated": False, "reason": "not estimated: no business assumptions given"}
    assert reports.roi_metrics(roi) == {}
    text = reports.render_executive_summary(
        req=req,
        thread_id="t",
        pipeline_status="success",
        lower_is_better=False,
        test_score=0.8,
        meets=True,
        validation={"checks": {}},
        best_model=None,
        candidates=[],
        registered=None,
        roi=roi,
        risks=[],
        governance=None,
        refused=None,
        accepted=[],
        approvals=[],
        stages=[],
        totals={"duration_s": 0.0, "cpu_s": 0.0, "artifact_bytes": 0},
        plots=[],
    )
    section = text.split("## ROI estimate")[1].split("Model documentation (")[0]
    assert "not estimated: no business assumptions given" in section
    assert not re.search(r"\d", section)  # no figure at all


def test_business_assumptions_are_validated() -> None:
    from pydantic import ValidationError

    from mpm.graph.state import ProjectRequirements

    bad = example("credit_risk", business_assumptions={**ASSUMPTIONS, "decisions_per_year": -5})
    with pytest.raises(ValidationError, match="decisions_per_year"):
        ProjectRequirements.model_validate(bad)
    with pytest.raises(ValidationError, match="currency"):
        ProjectRequirements.model_validate(
            example("credit_risk", business_assumptions={**ASSUMPTIONS, "currency": "euros"})
        )


def test_every_number_in_the_deliverables_is_traced(run: dict[str, Any]) -> None:
    values, client = run["values"], run["client"]
    hay = mlflow_haystack(client, values["mlflow"]["experiment_id"], run["tmp"])
    hay.add(values["requirements"])
    from mpm.graph.context import RunContext

    policy_numbers(hay, RunContext().policy_dir())
    for name, text in (
        ("executive_summary.md", run["summary"]),
        ("model_documentation.md", run["md"]),
        ("governance_dashboard.html", visible_text(run["dashboard"])),
    ):
        missing = untraced(text, hay)
        assert not missing, f"{name}: untraced numbers: {missing[:10]}"
    # the check has teeth: the invented ROI of old, or one made-up score, is caught
    invented = run["summary"] + "\nannual value USD 3,800,000, ROI 2,416%, AUC 0.613719\n"
    assert len(untraced(invented, hay)) == 3


def test_approval_rows_match_the_signed_audit_trail(run: dict[str, Any]) -> None:
    from mpm.graph.audit import read_trail, trail_path
    from mpm.graph.workspace import Workspace

    values = run["values"]
    trail = read_trail(trail_path(Workspace.resolve(run["workspace"]), "docs"))
    accepted = [e for e in trail if e.get("accepted")]
    assert accepted
    section = run["md"].split("## 11. Governance")[1].split("## 12.")[0]
    cells = [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in section.splitlines()
        if line.startswith("| ") and line.count("`") >= 4
    ]
    rows = {c[5].strip("`"): {"by": c[2], "when": c[3], "key": c[6].strip("`")} for c in cells}
    standing = {a["id"] for a in values["governance"]["approvals"] if a["state"] == "granted"}
    assert standing and len(rows) >= len(standing)
    last = {e["approval_id"]: e for e in accepted}  # the last accepted entry stands
    for approval in standing:
        entry = last[approval]
        assert rows[entry["decision_id"]] == {
            "by": entry["approver"],
            "when": entry["ts"],
            "key": entry["key_fingerprint"],
        }
        # the dashboard shows the same decision
        assert entry["decision_id"] in run["dashboard"]
        assert entry["key_fingerprint"] in run["dashboard"]
    # and nothing that is not a verified entry of the trail
    assert set(rows) <= {e["decision_id"] for e in accepted}


def test_hostile_name_and_comment_are_inert_in_md_and_html(run: dict[str, Any]) -> None:
    md, html, dashboard = run["md"], run["html"], run["dashboard"]
    for text in (md, html, dashboard):
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
        assert "<img" not in text and "<script>" not in text
    assert "\\x1b" in md and "\\u202e" in md  # shown, visibly
    assert "[click](javascript:" not in md and "![x](http" not in md
    assert "\\[click\\]\\(javascript:alert\\(2\\)\\)" in md
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in md
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in dashboard
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)


def test_documentation_is_logged_to_parent_and_registered_version(run: dict[str, Any]) -> None:
    values, client = run["values"], run["client"]
    parent = values["mlflow"]["parent_run_id"]
    names = {a.path for a in client.list_artifacts(parent)}
    assert {
        "model_documentation.md",
        "model_documentation.html",
        "bootstrap_intervals.json",
    } <= names
    mlops = values["results"]["mlops"]["outputs"]
    version = client.get_model_version(
        mlops["registered_model_name"], str(mlops["registered_model_version"])
    )
    tag = version.tags["mpm.model_documentation"]
    assert tag == f"runs:/{version.run_id}/model_documentation/model_documentation.md"
    local = client.download_artifacts(
        version.run_id, "model_documentation/model_documentation.md", str(run["tmp"])
    )
    assert Path(local).read_text(encoding="utf-8") == run["md"]


def test_dashboard_shows_score_vs_threshold_with_run_ids(run: dict[str, Any]) -> None:
    values, page = run["values"], run["dashboard"]
    section = page.split('id="criteria"')[1].split("</table>")[0]
    validation_run = values["results"]["model_validation"]["mlflow_run_id"]
    score = values["results"]["model_validation"]["outputs"]["test_score"]
    assert "Project success criterion" in section and "&gt;= 0.75" in section
    assert f"{score:.4f}" in section and validation_run in section


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.chromium
def test_model_documentation_renders_in_headless_chromium(
    run: dict[str, Any], tmp_path: Path
) -> None:
    browser = _chromium()
    assert browser, "headless Chromium is needed (apt-get install -y chromium)"
    page = Path(run["values"]["deliverables"]["files"]["model_documentation.html"])
    shot = tmp_path / "model_documentation.png"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2400",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1280, 2400)
        red, green, blue = rgb.getpixel((20, 20))  # the header band: the stylesheet applied
        assert blue > 80 and red < 60 and blue > red + 40, (red, green, blue)
        assert rgb.getpixel((5, 1200)) == (244, 246, 248)  # page background, not blank white
        colours = rgb.resize((320, 600)).getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 300  # text, tables, pills: rendered


def test_what_the_run_did_not_establish_reads_not_known() -> None:
    """A run with results but no saved files, intervals, importance or decisions: the
    documentation still renders, and each of those says "not known" instead of a figure."""
    from mpm.governance.testing import credit_project_state
    from mpm.graph import model_doc
    from mpm.graph.state import ProjectRequirements

    state = credit_project_state()
    state["remediation_attempts"] = [  # the supervisor's record of one attempt
        {
            "attempt": 1,
            "strategy": "class_weights",
            "strategies": ["class_weights"],
            "why": "imbalanced target",
            "status": "unmet",
            "before": {"test_score": 0.61},
            "after": {"test_score": 0.66, "development_run_id": "d1", "validation_run_id": "v1"},
        }
    ]
    req = ProjectRequirements.model_validate(state["requirements"])
    context = model_doc.documentation_context(
        state=state,
        req=req,
        thread_id="t",
        governance_report=None,
        criteria=[
            {
                "criterion": "Project success criterion",
                "framework": "requirements",
                "metric": "test roc_auc",
                "threshold": ">= 0.75",
                "value": 0.81,
                "met": True,
            }
        ],
        decisions=[],
        bootstrap=None,
        env={},
        fingerprints={},
        rerun_command="mpm kickoff --requirements r.yaml",
        registered=None,
        pipeline_status="partial_success",
        generated_at="2026-01-01T00:00:00+00:00",
    )
    md = model_doc.render_markdown(context)
    html = model_doc.render_html(context)
    assert "| 0.8100 | not known | yes |" in md  # the score, and no invented interval
    for line in (
        "Calibration: not known",
        "Feature importance: not known",
        "Data fingerprints (SHA-256): not known",
        "Robustness: not known",
    ):
        assert line in md, line
        assert line in visible_text(html), line
    assert "No model was registered." in md
    assert "| 1 | class_weights | imbalanced target | unmet | 0.6100 | 0.6600 | `d1`, `v1` |" in md
    assert "<td>class_weights</td><td>imbalanced target</td><td>unmet</td>" in html

"""The governance dashboard: content, escaping, self-containment, and a real browser rendering."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mpm.governance.assessment import GovernanceContext, GovernanceReport, assess_project
from mpm.governance.dashboard import render_dashboard, write_dashboard
from mpm.governance.testing import credit_project_state, llm_project_state, with_signed_approvals

REPO = Path(__file__).resolve().parents[2]
# The README's picture (docs/img/governance_dashboard.png) is refreshed by
# `python scripts/refresh_dashboard_image.py`, never by a test: tests leave tracked files alone.
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report(signing_identity: tuple[Path, Path]) -> GovernanceReport:
    """Half-way through approvals: the decisions are signed, as only signed ones count."""
    identity, keys = signing_identity
    state = with_signed_approvals(credit_project_state(), keys)
    return assess_project(state, context=GovernanceContext.load(identity=identity))


def test_unsigned_approvals_map_grants_nothing() -> None:
    report = assess_project(credit_project_state())  # the map alone, no signed entries
    assert "granted" not in report.approval_states.values()


@pytest.fixture(scope="module")
def html(report: GovernanceReport) -> str:
    return render_dashboard(report)


def test_dashboard_shows_status_frameworks_scores_and_classification(
    report: GovernanceReport, html: str
) -> None:
    assert "Retail credit default model" in html
    assert report.overall_status.value == "FAILED"  # equalized odds misses the ethical AI threshold
    assert 'class="pill s-FAILED"' in html
    for framework in report.frameworks:
        assert report.titles[framework] in html
    score = report.compliance_status["model_risk_management"].compliance_score
    assert f'style="width: {round(score * 100, 1)}%"' in html
    assert "Tier 1 classifier" in html and "Elevated classifier" in html


def test_dashboard_lists_findings_workflow_gates_and_groups(
    report: GovernanceReport, html: str
) -> None:
    assert "Equalized odds difference below standard" in html
    assert html.count('class="mark seq"') == 1 + sum(
        1 for a in report.approval_workflow.approvals if not a.parallel
    )
    assert 'class="mark par"' in html
    assert "Awaiting decision" in html and "Granted" in html and "Waiting" in html
    for gate in report.approval_workflow.gates:
        assert gate.name in html
    assert re.search(r'class="pill g-open">open<', html) and re.search(
        r'class="pill g-blocked">blocked<', html
    )
    assert "mrm-officer-1, mrm-officer-2" in html  # approver groups with their members
    assert "does not apply" in html  # external LLM governance, with its reason
    assert "model_type &#39;classification&#39; does not contain &#39;llm&#39;" in html


def test_dashboard_is_self_contained(html: str) -> None:
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "@import" not in html and "url(" not in html


def test_markup_in_names_and_answers_is_escaped() -> None:
    state = credit_project_state()
    state["requirements"]["project_name"] = XSS
    state["results"]["model_development"]["evidence"]["methodology"] = (
        XSS + "<img src=x onerror=alert(2)>"
    )
    state["human_answers"] = {
        "model_risk_management": {"success-criterion": '"><b onmouseover=alert(3)>x</b>'}
    }
    page = render_dashboard(assess_project(state))
    assert XSS not in page
    assert "<img" not in page and "<b onmouseover" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<script" not in page.lower()


def test_llm_project_dashboard_renders_with_nothing_approved(tmp_path: Path) -> None:
    report = assess_project(llm_project_state())
    # every model project gets intake; the LLM framework because the model is an LLM
    assert report.frameworks[0] == "model_intake"
    assert "external_llm_governance" in report.frameworks
    path = write_dashboard(report, tmp_path / "out" / "dashboard.html")
    page = path.read_text(encoding="utf-8")
    assert "External LLM Governance" in page and "exact_match = 0.64" in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.mark.chromium
def test_dashboard_renders_in_headless_chromium(tmp_path: Path, report: GovernanceReport) -> None:
    browser = _chromium()
    if browser is None:
        message = "headless Chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    page = write_dashboard(report, tmp_path / "dashboard.html")
    shot = tmp_path / "governance_dashboard.png"
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
        "--window-size=1280,2000",
        page.resolve().as_uri(),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 50_000

    from PIL import Image

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1280, 2000)
        red, green, blue = rgb.getpixel((20, 20))  # the header band: the stylesheet was applied
        assert blue > 80 and red < 60 and blue > red + 40, (red, green, blue)
        background = rgb.getpixel((10, 1500))
        assert background == (244, 246, 248), background  # page background, not a blank white page
        colours = rgb.resize((320, 500)).getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 300  # text, pills, bars: a real rendering


def test_dashboard_lists_every_signed_decision_with_its_signature(
    report: GovernanceReport, html: str
) -> None:
    from mpm.governance.dashboard import approval_rows

    assert report.decisions, "the fixture's approvals are signed"
    section = html.split('id="decisions"')[1].split("</table>")[0]
    for row in approval_rows(report):
        assert row["decision_id"] in section
        assert row["key_fingerprint"] and row["key_fingerprint"] in section
        assert row["approver"] in section
    # only what verifies: the unsigned map alone lists nothing
    unsigned = render_dashboard(assess_project(credit_project_state()))
    assert "No signed decision yet." in unsigned.split('id="decisions"')[1].split("</table>")[0]


def test_dashboard_shows_score_vs_threshold_per_criterion(report: GovernanceReport) -> None:
    from mpm.governance.dashboard import criteria_rows

    rows = criteria_rows(report)
    project = rows[0]
    assert project["criterion"] == "Project success criterion"
    assert project["threshold"] == ">= 0.75" and project["met"] is (project["value"] >= 0.75)
    eod = next(r for r in rows if "qualized" in r["criterion"])
    assert eod["met"] is False and eod["value"] == pytest.approx(0.13)


def test_run_links_only_for_a_tracking_server_and_without_credentials() -> None:
    from mpm.governance.assessment import _mlflow_runs
    from mpm.governance.dashboard import run_link

    runs = _mlflow_runs(
        {
            "mlflow": {
                "tracking_uri": "https://alice:s3cret@mlflow.example.com/",
                "experiment_id": "7",
                "parent_run_id": "p1",
            },
            "results": {"model_validation": {"mlflow_run_id": "abc"}},
        }
    )
    assert "s3cret" not in str(runs) and runs["stages"] == {"model_validation": "abc"}
    assert run_link(runs, "abc") == "https://mlflow.example.com/#/experiments/7/runs/abc"
    assert run_link({**runs, "tracking_uri": "sqlite:///ws/mlflow.db"}, "abc") is None

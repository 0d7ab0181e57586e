"""How long governance takes for one project: load the reference library, assess a project.

Prints JSON. Run: ``python benchmarks/governance.py [--repeat N]`` (default 15 loads and 50
assessments). The project is the sample high-risk credit model on personal data
(:func:`governance.testing.credit_project_state`): four frameworks apply.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the ``governance`` package; drop the folder so the package is imported.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


REPO = Path(__file__).resolve().parents[1]
MODEL_INTAKE_RULE = (
    'visibilityMap := []rune("00")\n'
    'if classificationInputs["ITSecReview"].(string) == "Yes" {\n    visibilityMap[0] = \'1\'\n}\n'
    'if classificationInputs["LegalReview"].(string) == "Yes" {\n    visibilityMap[1] = \'1\'\n}\n'
    "return string(visibilityMap)\n"
)


def _timed(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {
        "median_ms": round(statistics.median(samples), 3),
        "min_ms": round(min(samples), 3),
        "max_ms": round(max(samples), 3),
        "runs": repeat,
    }


def main() -> None:
    from mpm.governance import PolicyLibrary
    from mpm.governance._files import reference_dir
    from mpm.governance.assessment import GovernanceContext, assess_project
    from mpm.governance.dashboard import render_dashboard
    from mpm.governance.testing import credit_project_state

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15, help="library loads to time")
    parser.add_argument("--assessments", type=int, default=50, help="project assessments to time")
    args = parser.parse_args()

    from mpm.governance import compile_rule
    from mpm.governance.rules import compile_visibility

    rule = compile_rule(MODEL_INTAKE_RULE)
    visibility = compile_visibility('string(classificationValue[0]) == "1"')
    directory = reference_dir()
    context = GovernanceContext.load(directory)
    state = credit_project_state()
    report = assess_project(state, context=context)
    result = {
        "benchmark": "governance",
        "python": platform.python_version(),
        "policies": len(context.library),
        "frameworks_applied": report.frameworks,
        "checks_evaluated": sum(len(e.checks) for e in report.compliance_status.values()),
        "workflow_approvals": len(report.approval_workflow.approvals),
        "load_reference_library": _timed(lambda: PolicyLibrary.load(directory), args.repeat),
        "load_governance_context": _timed(lambda: GovernanceContext.load(directory), args.repeat),
        "assess_credit_project": _timed(
            lambda: assess_project(state, context=context), args.assessments
        ),
        "render_dashboard": _timed(lambda: render_dashboard(report), args.repeat),
        "compile_classification_rule": _timed(lambda: compile_rule(MODEL_INTAKE_RULE), 200),
        "evaluate_classification_rule": _timed(
            lambda: rule.evaluate({"ITSecReview": "Yes", "LegalReview": "No"}), 2000
        ),
        "evaluate_visibility_rule": _timed(lambda: visibility.evaluate("10"), 2000),
    }
    public = REPO.parent / "shared" / "policies" / "domino-examples"
    if public.is_dir():  # the published Domino examples, read as they are
        result["load_public_domino_examples"] = _timed(
            lambda: PolicyLibrary.load(public), args.repeat
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

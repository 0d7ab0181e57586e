"""How long reading policies takes: parse + validate each public policy, compile rules.

Prints JSON. Run: ``python benchmarks/governance_loading.py [POLICY_DIR] [--repeat N]``
(default: ../shared/policies next to the repository, 20 repeats).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from governance import PolicyLibrary, compile_rule, load_policy
from governance.rules import compile_visibility

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
    return {"median_ms": round(statistics.median(samples), 3), "max_ms": round(max(samples), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", nargs="?", default=str(REPO.parent / "shared" / "policies"))
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    directory = Path(args.directory)
    files = sorted(directory.rglob("*.y*ml"))
    results: dict[str, object] = {"policies": len(files), "repeat": args.repeat}
    per_file = {}
    for path in files:
        per_file[path.name] = _timed(lambda p=path: load_policy(p), args.repeat)
    results["load_policy"] = per_file
    examples = directory / "domino-examples"
    if examples.is_dir():
        results["library_load"] = _timed(lambda: PolicyLibrary.load(examples), args.repeat)
    rule = compile_rule(MODEL_INTAKE_RULE)
    assert rule is not None
    results["compile_rule_us"] = round(
        _timed(lambda: compile_rule(MODEL_INTAKE_RULE), 200)["median_ms"] * 1000, 1
    )
    results["evaluate_rule_us"] = round(
        _timed(lambda: rule.evaluate({"ITSecReview": "Yes", "LegalReview": "No"}), 2000)[
            "median_ms"
        ]
        * 1000,
        1,
    )
    visibility = compile_visibility('string(classificationValue[0]) == "1"')
    results["evaluate_visibility_us"] = round(
        _timed(lambda: visibility.evaluate("10"), 2000)["median_ms"] * 1000, 1
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Trace every number a deliverable shows back to where it came from.

The sources a figure may come from: the MLflow data of the thread's runs (metrics,
params, tags, and the JSON artifacts the stage runs logged: stage results, validation and
quality reports, feature importance), the requirements, and the organisation's policy files
(thresholds and option values). The documented allow-list: ISO dates and timestamps;
integers up to ``SMALL_COUNT`` (section numbers, positions and counts of items the same
document lists). Anything else is an untraced number: an invented figure fails.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SMALL_COUNT = 30
_DATES = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
# a number standing alone: not part of an identifier, hash, key, path or version string
_NUMBER = re.compile(r"(?<![\w.\-/:@#+=\\])(\d[\d,]*(?:\.\d+)*)(%?)(?![\w\-/:@+=])")
_ANY_NUMBER = re.compile(r"\d+(?:\.\d+)*")


class Haystack:
    """Every number (and version-like string) the sources hold."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.strings: set[str] = set()

    def add(self, value: Any) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float):
            if math.isfinite(float(value)):
                self.values.append(abs(float(value)))
            return
        if isinstance(value, dict):
            for k, v in value.items():
                self.add(k)
                self.add(v)
            return
        if isinstance(value, list | tuple | set):
            for v in value:
                self.add(v)
            return
        text = str(value)
        for token in _ANY_NUMBER.findall(text):
            self.strings.add(token)
            if token.count(".") <= 1:
                self.values.append(float(token))

    def holds(self, token: str, percent: bool) -> bool:
        if token.count(".") > 1:  # a version string: exactly as tracked
            return token in self.strings
        number = float(token.replace(",", ""))
        decimals = len(token.split(".")[1]) if "." in token else 0
        tolerance = 0.5 * 10**-decimals + 1e-9
        for value in self.values:
            shown = value * 100 if percent else value
            if abs(shown - number) <= tolerance:
                return True
        return False


def mlflow_haystack(client: Any, experiment_id: str, tmp: Path) -> Haystack:
    """Metrics, params and tags of every run of the thread, and the stage runs' JSON
    artifacts (not the parent's or governance's: those hold the deliverables under test)."""
    hay = Haystack()
    runs = client.search_runs([experiment_id], max_results=5000)
    for run in runs:
        hay.add(dict(run.data.metrics))
        hay.add(list(run.data.params.values()))
        hay.add([v for k, v in run.data.tags.items() if not k.startswith("mlflow.")])
        tags = run.data.tags
        if "mlflow.parentRunId" not in tags:  # the parent holds the deliverables
            continue
        if tags.get("orchestration_type") == "governance_compliance":
            continue
        for path in _json_artifacts(client, run.info.run_id):
            local = client.download_artifacts(run.info.run_id, path, str(tmp))
            try:
                hay.add(json.loads(Path(local).read_text(encoding="utf-8")))
            except ValueError:
                continue
    return hay


def _json_artifacts(client: Any, run_id: str, path: str | None = None) -> Iterable[str]:
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            yield from _json_artifacts(client, run_id, item.path)
        elif item.path.endswith(".json"):
            yield item.path


def policy_numbers(hay: Haystack, policy_dir: Path) -> None:
    for path in sorted(policy_dir.rglob("*")):
        if path.suffix in {".yml", ".yaml", ".md"} and path.is_file():
            hay.add(path.read_text(encoding="utf-8"))


def untraced(text: str, hay: Haystack) -> list[str]:
    """The numeric tokens of ``text`` no source holds (with some context, for the message)."""
    text = _DATES.sub(" ", text)
    missing = []
    for match in _NUMBER.finditer(text):
        token, percent = match.group(1).rstrip(","), bool(match.group(2))
        plain = token.replace(",", "")
        if not percent and "." not in plain and int(plain) <= SMALL_COUNT:
            continue
        if not hay.holds(token, percent):
            start = max(match.start() - 40, 0)
            missing.append(f"{token}{match.group(2)} in …{text[start : match.end() + 20]!r}")
    return missing


def visible_text(html: str) -> str:
    """What a reader of an HTML page sees: no style block, no tags, entities decoded."""
    import html as html_lib

    body = re.sub(r"<style.*?</style>", " ", html, flags=re.S)
    body = re.sub(r"<[^>]+>", " ", body)
    return html_lib.unescape(body)

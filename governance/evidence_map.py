"""Answer policy questions from the project's own state, as configured in a data file.

Most governance questions ("what is the model for?", "did the data pass quality checks?",
"what is the test ROC AUC?") are already answered somewhere in the run: in the
requirements or in a stage's result. ``reference/governance/evidence_map.yaml`` says,
per framework, where each answer lives, as a dotted path into the project state::

    requirements.business_objective
    results.data_acquisition.evidence.data_quality_passed
    results.model_validation.metrics.test_roc_auc
    results.model_validation.artifacts[name=validation_report].uri

Path steps: ``name`` (a mapping key, or a list index when it is a number), ``[N]`` (list
index), ``[key=value]`` (the first list item whose ``key`` equals ``value``), ``[*]`` (every
item; the result is a list). A path that does not exist leaves the question unanswered
-- the evaluator then reports it as an open question for a person -- it never guesses.

An entry is either a path, or a mapping::

    source: <path> | [<path>, <path>, ...]   # the first path that has a value wins
    value: <constant>                         # instead of source
    any_in: [a, b]      # list value -> true if any item is one of these (case-insensitive)
    map: {from: to}     # translate the value (each item of a list) -- e.g. true -> 'Yes'
    join: ", "          # list value -> one text

``common`` entries apply to every framework; a framework's own entries win.
``metric_sources`` name mappings whose numeric entries are all offered as metrics under
their own names (policies match them by name or alias). Answers people gave to open
questions (``human_answers`` in the state, flat ``{key: value}`` or per framework
``{framework: {key: value}}``) fill only what the map did not derive: an answer never
overwrites a fact mpm derived (risk-tier inputs, data sensitivity, metrics); where it says
something else it is kept in ``EvidenceBundle.disputed`` and evaluation raises a finding.

Resolution is pure dict walking: no I/O, no imports of heavy libraries, no side effects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from mpm.governance._files import read_yaml_mapping, reference_dir
from mpm.governance.evidence import EvidenceBundle

__all__ = [
    "EvidenceMap",
    "EvidenceMapError",
    "FrameworkEvidenceMap",
    "MapEntry",
    "default_evidence_map_path",
    "load_evidence_map",
    "lookup_path",
    "resolve_evidence",
]


class EvidenceMapError(ValueError):
    """The evidence map file does not follow the format; the message says where."""


# --------------------------------------------------------------------------- paths

_TOKEN = re.compile(r"(?:^|\.)(?P<name>[^.\[\]]+)|\[(?P<selector>[^\]]*)\]")


@dataclass(frozen=True)
class _Step:
    kind: str  # "key" | "index" | "select" | "all"
    key: str = ""
    index: int = 0
    value: str = ""


def _parse_path(path: str) -> tuple[_Step, ...]:
    """Parse ``a.b[0].c[name=x][*]``; raises ValueError saying what is wrong."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError("expected a dotted path like 'requirements.business_objective'")
    steps: list[_Step] = []
    position = 0
    for match in _TOKEN.finditer(path):
        if match.start() != position:
            break
        position = match.end()
        if match.group("name") is not None:
            steps.append(_Step("key", key=match.group("name")))
            continue
        selector = match.group("selector").strip()
        if selector == "*":
            steps.append(_Step("all"))
        elif selector.isdigit():
            steps.append(_Step("index", index=int(selector)))
        elif "=" in selector and selector.split("=", 1)[0].strip():
            key, value = (s.strip() for s in selector.split("=", 1))
            steps.append(_Step("select", key=key, value=value))
        else:
            raise ValueError(f"bad selector [{selector}] in {path!r}; use [N], [key=value] or [*]")
    if position != len(path) or not steps or steps[0].kind != "key":
        raise ValueError(
            f"cannot read path {path!r}; expected steps like 'results.stage.metrics.x'"
        )
    return tuple(steps)


_MISSING = object()
_FRAMEWORK_SCOPE = re.compile(r"^[a-z][a-z0-9_]*$")


def _walk(value: Any, steps: Sequence[_Step]) -> Any:
    for position, step in enumerate(steps):
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if step.kind == "key":
            if isinstance(value, Mapping):
                if step.key not in value:
                    return _MISSING
                value = value[step.key]
            elif _is_list(value) and step.key.isdigit() and int(step.key) < len(value):
                value = value[int(step.key)]
            else:
                return _MISSING
        elif step.kind == "index":
            if not _is_list(value) or step.index >= len(value):
                return _MISSING
            value = value[step.index]
        elif step.kind == "select":
            if not _is_list(value):
                return _MISSING
            found = [
                item
                for item in value
                if isinstance(item, Mapping) and str(item.get(step.key)) == step.value
            ]
            if not found:
                return _MISSING
            value = found[0]
        else:  # all
            if not _is_list(value):
                return _MISSING
            rest = steps[position + 1 :]
            items = [_walk(item, rest) for item in value]
            return [item for item in items if item is not _MISSING and item is not None]
    return value


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def lookup_path(state: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` in ``state``, or None when any step is missing."""
    value = _walk(state, _parse_path(path))
    return None if value is _MISSING else value


# --------------------------------------------------------------------------- file model


class MapEntry(BaseModel):
    """Where one answer comes from, and how it is translated into the policy's options."""

    model_config = ConfigDict(extra="forbid")

    source: list[str] = Field(default_factory=list)
    value: Any = None
    any_in: list[str] | None = None
    map: dict[Any, Any] | None = None
    join: str | None = None

    _paths: tuple[tuple[_Step, ...], ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"source": [data]}
        if isinstance(data, dict) and isinstance(data.get("source"), str):
            return {**data, "source": [data["source"]]}
        return data

    @field_validator("source")
    @classmethod
    def _valid_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            _parse_path(path)
        return paths

    @model_validator(mode="after")
    def _one_origin(self) -> MapEntry:
        if bool(self.source) == ("value" in self.model_fields_set):
            raise ValueError(
                "give either 'source' (a path or a list of paths) or 'value', not both or neither"
            )
        self._paths = tuple(_parse_path(p) for p in self.source)
        return self

    def resolve(self, state: Mapping[str, Any]) -> tuple[Any, str] | None:
        """``(value, where it came from)``, or None when no source has a value."""
        if not self.source:
            return self._transform(self.value), "constant"
        for path, steps in zip(self.source, self._paths, strict=True):
            found = _walk(state, steps)
            if _unanswered(found):
                continue
            value = self._transform(found)
            if not _unanswered(value):
                return value, path
        return None

    def _transform(self, value: Any) -> Any:
        if self.any_in is not None:
            wanted = {str(v).casefold() for v in self.any_in}
            items = value if _is_list(value) else [value]
            value = any(str(getattr(i, "value", i)).casefold() in wanted for i in items)
        if self.map is not None:
            if _is_list(value):
                mapped = [self._translate(item) for item in value]
                value = list(dict.fromkeys(mapped))
            else:
                value = self._translate(value)
        if self.join is not None and _is_list(value):
            value = self.join.join(str(v) for v in value)
        return value

    def _translate(self, value: Any) -> Any:
        assert self.map is not None
        if isinstance(value, bool):
            # bool keys only: True == 1 would otherwise also match a key 1
            for key, target in self.map.items():
                if isinstance(key, bool) and key is value:
                    return target
            return value
        if value in self.map and not isinstance(value, bool):
            return self.map[value]
        folded = str(value).casefold()
        for key, target in self.map.items():
            if not isinstance(key, bool) and str(key).casefold() == folded:
                return target
        return value


def _unanswered(value: Any) -> bool:
    return (
        value is _MISSING or value is None or (isinstance(value, str | list | dict) and not value)
    )


class FrameworkEvidenceMap(BaseModel):
    """Where the answers, metrics and files of one framework come from."""

    model_config = ConfigDict(extra="forbid")

    answers: dict[str, MapEntry] = Field(default_factory=dict)
    metrics: dict[str, MapEntry] = Field(default_factory=dict)
    files: dict[str, MapEntry] = Field(default_factory=dict)
    metric_sources: list[str] = Field(default_factory=list)

    @field_validator("metric_sources")
    @classmethod
    def _valid_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            _parse_path(path)
        return paths


class EvidenceMap(BaseModel):
    """The whole evidence map file."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    common: FrameworkEvidenceMap = Field(default_factory=FrameworkEvidenceMap)
    frameworks: dict[str, FrameworkEvidenceMap] = Field(default_factory=dict)
    _merged: dict[str, FrameworkEvidenceMap] = PrivateAttr(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version != 1:
            raise ValueError(f"expected 1; got {version}")
        return version

    def for_framework(self, framework: str) -> FrameworkEvidenceMap:
        """``common`` merged with the framework's own entries (which win).

        Merged once per framework and kept (building it re-validates every entry, and
        governance asks on every evaluation); callers read it, none changes it."""
        merged = self._merged.get(framework)
        if merged is None:
            own = self.frameworks.get(framework, FrameworkEvidenceMap())
            merged = FrameworkEvidenceMap(
                answers={**self.common.answers, **own.answers},
                metrics={**self.common.metrics, **own.metrics},
                files={**self.common.files, **own.files},
                metric_sources=[*own.metric_sources, *self.common.metric_sources],
            )
            self._merged[framework] = merged
        return merged

    def state_keys(self) -> frozenset[str]:
        """The top-level project-state keys any entry of the map reads (its sources' first
        step): what an evaluation's result can depend on besides the fixed inputs."""
        keys: set[str] = set()
        for fmap in (self.common, *self.frameworks.values()):
            for entry in (*fmap.answers.values(), *fmap.metrics.values(), *fmap.files.values()):
                keys.update(path[0].key for path in entry._paths)
            keys.update(_parse_path(p)[0].key for p in fmap.metric_sources)
        return frozenset(keys)


def _format_error(source: str, error: ValidationError) -> EvidenceMapError:
    first = error.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(root)"
    message = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if isinstance(got, dict) or got is None else f"; got {got!r}"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return EvidenceMapError(f"{source}: {loc}: {message}{shown}{suffix}")


def default_evidence_map_path() -> Path:
    return reference_dir() / "evidence_map.yaml"


def load_evidence_map(path: str | Path | None = None) -> EvidenceMap:
    """Read and validate an evidence map (default: the reference one)."""
    file = Path(path) if path is not None else default_evidence_map_path()
    data = read_yaml_mapping(file, EvidenceMapError)
    try:
        return EvidenceMap.model_validate(data)
    except ValidationError as exc:
        raise _format_error(file.name, exc) from None


# --------------------------------------------------------------------------- resolution


def _state_mapping(project_state: Any) -> Mapping[str, Any]:
    if isinstance(project_state, BaseModel):
        return project_state.model_dump(mode="json")
    if not isinstance(project_state, Mapping):
        raise TypeError(f"project_state must be a mapping; got {type(project_state).__name__}")
    return project_state


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def resolve_evidence(
    evidence_map: EvidenceMap, framework: str, project_state: Mapping[str, Any]
) -> EvidenceBundle:
    """Answers, metrics and files for ``framework`` found in ``project_state``.

    ``project_state`` is the graph state (or any mapping with ``requirements``,
    ``results``, ``human_answers``...). Entries whose source is missing are left out, so
    the evaluator reports them as open questions instead of trusting a guess.
    """
    state = _state_mapping(project_state)
    spec = evidence_map.for_framework(framework)
    bundle = EvidenceBundle()

    for mapping_path in spec.metric_sources:
        found = lookup_path(state, mapping_path)
        if isinstance(found, Mapping):
            for name, raw in found.items():
                number = _as_number(raw)
                if number is not None and str(name) not in bundle.metrics:
                    bundle.metrics[str(name)] = number
                    bundle.sources[f"metric:{name}"] = f"{mapping_path}.{name}"

    for name, entry in spec.metrics.items():
        resolved = entry.resolve(state)
        number = _as_number(resolved[0]) if resolved else None
        if number is not None and resolved is not None:
            bundle.metrics[name] = number
            bundle.sources[f"metric:{name}"] = resolved[1]

    for key, entry in spec.files.items():
        resolved = entry.resolve(state)
        if resolved is not None and isinstance(resolved[0], str):
            bundle.files[key] = resolved[0]
            bundle.sources[f"file:{key}"] = resolved[1]

    for key, entry in spec.answers.items():
        resolved = entry.resolve(state)
        if resolved is not None:
            bundle.answers[key] = resolved[0]
            bundle.sources[key] = resolved[1]

    derived = set(bundle.answers)
    human = state.get("human_answers") or {}
    if isinstance(human, Mapping):
        scoped = human.get(framework)
        # A mapping under a framework-id-shaped key is that framework's answers; a mapping
        # under an evidence-set id (``Local.x``) is an ordinary answer for that set.
        flat = {
            k: v
            for k, v in human.items()
            if not (isinstance(v, Mapping) and _FRAMEWORK_SCOPE.match(str(k)))
        }
        given = [(k, v, f"human_answers.{k}") for k, v in flat.items()]
        if isinstance(scoped, Mapping):
            given += [(k, v, f"human_answers.{framework}.{k}") for k, v in scoped.items()]
        for key, value, source in given:
            key = str(key)
            if key in derived:
                # a fact mpm derived is never overwritten by an answer; a different answer
                # is kept as a dispute (evaluation turns it into a finding)
                bundle.disputed[key] = {"answer": value, "source": source}
                continue
            bundle.answers[key] = value
            bundle.sources[key] = source
    return bundle

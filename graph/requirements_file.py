"""Reading a requirements file: one clear line for whatever is wrong with it."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from mpm.governance._files import MAX_YAML_BYTES, yaml_budget_problem
from mpm.graph.state import ProjectRequirements


class RequirementsError(ValueError):
    """A requirements file that cannot be used; the message is one line naming file and field."""


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int, first: int) -> None:
        super().__init__(f"{key}: duplicate key")
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``, except that a key given twice in one mapping is an error: PyYAML
    would keep the last value without a word, and the person meant one of them."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> object:
    seen: dict[object, int] = {}
    for key_node, _value in node.value:
        key = loader.construct_object(key_node)
        try:
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1, seen[key] + 1)
            seen[key] = key_node.start_mark.line
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def format_validation_error(source: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    given = first.get("input")
    shown = "" if isinstance(given, dict | list) or given is None else f"; got {given!r}"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {loc}: {message}{shown}{more}"


def load_requirements(path: str | Path) -> ProjectRequirements:
    """Read and validate a requirements file; files over 1 MB, aliases expanding beyond
    100,000 nodes and duplicate keys are refused (one line, ``RequirementsError``)."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_YAML_BYTES:
            raise RequirementsError(
                f"{path}: file of {path.stat().st_size:,} bytes exceeds the limit of "
                f"{MAX_YAML_BYTES:,} bytes"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise RequirementsError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    problem = yaml_budget_problem(raw, ruamel=False)
    if problem is not None:
        raise RequirementsError(f"{path}: {problem}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequirementsError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise RequirementsError(
            f"{path}: line {exc.line}: {exc.key}: duplicate key (first at line {exc.first})"
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RequirementsError(f"{path}: YAML syntax error at {where}{problem}") from exc
    if data is None:
        raise RequirementsError(
            f"{path}: the file is empty; expected a mapping of requirement fields"
        )
    if not isinstance(data, dict):
        raise RequirementsError(
            f"{path}: expected a mapping of requirement fields at the top level; got {type(data).__name__}"
        )
    unknown = _unknown_key(data)
    if unknown:
        raise RequirementsError(f"{path}: {unknown}")
    try:
        return ProjectRequirements.model_validate(data)
    except ValidationError as exc:
        raise RequirementsError(format_validation_error(str(path), exc)) from exc


def check_requirements_data(
    req: ProjectRequirements, workspace_root: str | Path, thread_id: str | None, source: str | Path
) -> None:
    """The requirements' data checked before anything is created for the run
    (``tools/data_check.py``): a problem is a :class:`RequirementsError` naming the file
    ``source`` and the field. Nothing is written, not even the workspace folder."""
    from mpm.tools.data_check import check_data_sources
    from mpm.tools.errors import DataError

    try:
        check_data_sources(req.model_dump(mode="json"), workspace_root, thread_id)
    except DataError as exc:
        raise RequirementsError(f"{source}: {exc}") from exc


def _unknown_key(data: dict[object, object]) -> str | None:
    """A key that looks like a misspelt requirement field, with the field it likely means:
    a typo is reported as itself ("did you mean target_metric?"), not as the required field
    it left missing. Keys like no field at all are left to the model's own "extra inputs
    are not permitted"."""
    import difflib

    known = sorted(ProjectRequirements.model_fields)
    for key in data:
        if str(key) not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.75)
            if close:
                return f"{key}: unknown key; did you mean {close[0]}?"
    return None


def load_yaml_unique(text: str) -> object:
    """``yaml.safe_load`` that refuses duplicate keys (raises :class:`DuplicateKeyError`)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


DuplicateKeyError = _DuplicateKey

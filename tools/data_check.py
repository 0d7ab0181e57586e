"""Checking the data a project names before anything is created for it.

A run that starts on a file that is not there, or on a target with one class, gets as far
as the data stage, spends its retries and ends partial, leaving a thread, a checkpoint,
a run folder and MLflow runs behind for a typo. :func:`check_data_sources` is what the
kickoff runs first (CLI before it creates anything, the graph's kickoff before planning),
so such input is refused with one line naming the source or field at fault:

* every source: a known ``sklearn:``/``synthetic:`` name, or a CSV/Parquet file that
  exists, resolves inside the workspace (relative paths are relative to it), is not inside
  another thread's run folder (``runs/<other thread>/``) or MLflow's artifact store
  (``mlartifacts/``) — one project may not read another's data —, and can be read;
* the first source (the training table, the one the data stage acquires): the target
  column exists and has at least two classes (classification) or is numeric
  (regression), enough rows remain to split, and the split and excluded columns exist.

The data stage repeats the path rules (``datasets.source_path``) whatever door a run came
in by.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpm.tools.datasets import (
    DEFAULT_SYNTHETIC_ROWS,
    MIN_ROWS,
    check_target,
    choose_target,
    load_sklearn,
    read_table,
    source_path,
)
from mpm.tools.errors import DataError, ToolConfigError

if TYPE_CHECKING:
    import pandas as pd

MAX_SYNTHETIC_CHECK_ROWS = 50_000
"""A synthetic source larger than this is checked on a sample of this size (its columns
and target type do not depend on the size)."""


def check_data_sources(
    requirements: Mapping[str, Any], workspace_root: str | Path, thread_id: str | None = None
) -> None:
    """Raise :class:`DataError` (one line, field first) unless the requirements' data can
    be used; see the module docstring for what is checked."""
    sources = list(requirements.get("data_sources") or [])
    seed = int(requirements.get("seed") or 42)
    for index, source in enumerate(sources):
        uri = str(source.get("uri") or "").strip()
        try:
            df, default_target = _load(uri, workspace_root, thread_id, source.get("rows"), seed)
        except (DataError, ToolConfigError) as exc:
            raise DataError(f"data_sources.{index}.uri: {_one_line(exc)}") from exc
        if index == 0:
            _check_training_table(df, default_target, uri, requirements, source.get("rows"))


def _load(
    uri: str, root: str | Path, thread_id: str | None, rows: Any, seed: int
) -> tuple[pd.DataFrame, str | None]:
    from mpm.tools.synthetic import SCHEMA_INFO, SCHEMAS, generate

    if uri.startswith("sklearn:"):
        df, target, _ = load_sklearn(uri.removeprefix("sklearn:").strip())
        return df, target
    if uri.startswith("synthetic:"):
        schema = uri.removeprefix("synthetic:").strip().lower()
        if schema not in SCHEMAS:
            raise DataError(
                f"{uri}: unknown synthetic schema {schema!r}; expected one of {', '.join(SCHEMAS)}"
            )
        size = min(int(rows or DEFAULT_SYNTHETIC_ROWS), MAX_SYNTHETIC_CHECK_ROWS)
        return generate(schema, size, seed), SCHEMA_INFO[schema][0]
    if "://" in uri and not uri.startswith("file://"):
        raise ToolConfigError(
            f"uri {uri!r}: unsupported scheme; expected sklearn:<name>, synthetic:<schema> "
            "or a path to a CSV/Parquet file"
        )
    path = source_path(uri, root, thread_id)
    try:
        return read_table(path), None
    except OSError as exc:  # permissions, a file that went away, an unreadable mount
        raise DataError(f"{uri}: cannot read: {exc.strerror or exc}") from exc


def _check_training_table(
    df: pd.DataFrame,
    default_target: str | None,
    uri: str,
    req: Mapping[str, Any],
    rows: Any,
) -> None:
    model_type = str(req.get("model_type") or "")
    try:
        target = choose_target(df, req.get("target_column"), default_target, uri)
        if model_type in {"classification", "regression"}:
            check_target(df, target, model_type, uri)
    except DataError as exc:
        raise DataError(f"target_column: {_one_line(exc)}") from exc
    usable = int(df[target].notna().sum())
    if rows is not None:
        usable = min(usable, int(rows))
    if usable < MIN_ROWS:
        field = "data_sources.0.rows" if rows is not None and int(rows) < MIN_ROWS else "data"
        raise DataError(
            f"{field}: {uri}: only {usable} rows with a target value; need at least {MIN_ROWS} "
            "to split into train/validation/test and cross-validate"
        )
    columns = [str(c) for c in df.columns]
    for field in ("group_column", "time_column"):
        name = req.get(field)
        if name and str(name) not in columns:
            raise DataError(
                f"{field}: {name!r} is not a column of {uri}; available columns: "
                f"{', '.join(columns)}"
            )
    unknown = [c for c in req.get("exclude_columns") or [] if str(c) not in columns]
    if unknown:
        raise DataError(
            f"exclude_columns: {', '.join(map(repr, unknown))} not in {uri}; available "
            f"columns: {', '.join(columns)}"
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__

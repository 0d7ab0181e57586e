"""Getting a data set into the workspace: ``acquire_dataset`` and ``split_dataset``.

Whatever the source (a data set scikit-learn ships, a synthetic schema, or a CSV/Parquet
file the user gave), the result is the same: a ``raw.parquet`` in the stage folder and a
small JSON description. Files are only ever written under the ``out_dir`` the caller
passes, with fixed names; a user path that resolves outside ``base_dir`` is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpm.tools.errors import DataError, ToolConfigError
from mpm.tools.metrics import check_model_type
from mpm.tools.synthetic import SCHEMA_INFO, SCHEMAS

if TYPE_CHECKING:
    import pandas as pd

SKLEARN_DATASETS = ("breast_cancer", "wine", "diabetes", "iris", "digits")
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
MIN_ROWS = 30  # below this no train/validation/test split and cross-validation is meaningful
DEFAULT_SYNTHETIC_ROWS = 5000
_TARGET_GUESSES = ("target", "label", "y", "class")


def acquire_dataset(
    uri: str,
    out_dir: str,
    *,
    target_column: str | None = None,
    rows: int | None = None,
    seed: int = 42,
    base_dir: str | None = None,
    thread_id: str | None = None,
) -> dict[str, Any]:
    """Load or generate the data named by ``uri`` and write it to ``out_dir/raw.parquet``.

    ``uri``: ``sklearn:<name>``, ``synthetic:<credit|churn|fraud>`` or a CSV / Parquet path
    (relative paths resolve against ``base_dir``, default the current directory; a path that
    escapes ``base_dir`` is refused; with ``thread_id``, ``base_dir`` is the workspace and
    :func:`source_path`'s rules apply). ``rows`` samples (sklearn, files) or sizes (synthetic,
    default 5000) the data reproducibly with ``seed``.

    Returns ``{path, rows, columns, target_column, feature_columns, source,
    sensitive_columns, description}``. Raises ``DataError`` for unusable data and
    ``ToolConfigError`` for an unknown URI scheme.
    """
    uri = str(uri).strip()
    if rows is not None and int(rows) <= 0:
        raise ToolConfigError(f"rows: expected a positive integer; got {rows!r}")
    sensitive: tuple[str, ...] = ()
    if uri.startswith("sklearn:"):
        df, default_target, description = load_sklearn(uri.removeprefix("sklearn:").strip())
        source = "sklearn"
    elif uri.startswith("synthetic:"):
        schema = uri.removeprefix("synthetic:").strip().lower()
        if schema not in SCHEMAS:
            raise DataError(
                f"{uri}: unknown synthetic schema {schema!r}; expected one of {', '.join(SCHEMAS)}"
            )
        from mpm.tools.synthetic import generate

        size = int(rows) if rows is not None else DEFAULT_SYNTHETIC_ROWS
        df = generate(schema, size, seed)
        default_target, sensitive, description = SCHEMA_INFO[schema]
        source = "synthetic"
        rows = None  # already the requested size
    elif "://" in uri and not uri.startswith("file://"):
        raise ToolConfigError(
            f"uri {uri!r}: unsupported scheme; expected sklearn:<name>, synthetic:<schema> "
            "or a path to a CSV/Parquet file"
        )
    else:
        path = (
            source_path(uri, base_dir, thread_id)
            if thread_id is not None and base_dir is not None
            else resolve_inside(uri.removeprefix("file://"), base_dir)
        )
        df = read_table(path)
        default_target, description = None, f"File {path.name}"
        source = "file"

    target = choose_target(df, target_column, default_target, uri)
    if rows is not None and int(rows) < len(df):
        df = df.sample(n=int(rows), random_state=seed).reset_index(drop=True)
    _check_rows(df, uri)
    df = _normalise_columns(df)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "raw.parquet"
    df.to_parquet(path, index=False)
    features = [c for c in df.columns if c != target]
    return {
        "path": str(path),
        "rows": int(len(df)),
        "columns": [str(c) for c in df.columns],
        "target_column": target,
        "feature_columns": features,
        "source": source,
        "uri": uri,
        "sensitive_columns": [c for c in sensitive if c in df.columns],
        "description": description,
    }


def split_dataset(
    path: str,
    target_column: str,
    out_dir: str,
    *,
    seed: int,
    model_type: str,
    test_size: float = 0.2,
    val_size: float = 0.2,
    group_column: str | None = None,
    time_column: str | None = None,
) -> dict[str, Any]:
    """Reproducible train / validation / test split (stratified for classification).

    ``test_size`` and ``val_size`` are fractions of the whole data set. Rows whose target is
    missing are dropped first (counted in ``dropped_missing_target``). Writes
    ``train.parquet``, ``val.parquet`` and ``test.parquet`` to ``out_dir``.

    ``group_column``: every group (a customer, a patient, a panel unit) lands in exactly one
    split, so no test row shares a group with a training row. ``time_column``: ordered by
    time, the oldest rows train and the newest are the test (out-of-time validation).
    """
    from sklearn.model_selection import train_test_split

    model_type = check_model_type(model_type)
    for name, value in (("test_size", test_size), ("val_size", val_size)):
        if not 0 < float(value) < 1:
            raise ToolConfigError(f"{name}: expected a fraction between 0 and 1; got {value!r}")
    if test_size + val_size >= 0.9:
        raise ToolConfigError(
            f"test_size + val_size: expected < 0.9 so that training data remains; got {test_size + val_size}"
        )
    df = read_table(Path(path))
    check_target(df, target_column, model_type, str(path))
    before = len(df)
    df = df[df[target_column].notna()].reset_index(drop=True)
    _check_rows(df, str(path))
    stratify = None
    if model_type == "classification":
        counts = df[target_column].value_counts()
        rare = counts[counts < 5]
        if len(rare):
            raise DataError(
                f"{path}: target column {target_column!r} class {str(rare.index[0])!r} has "
                f"only {int(rare.iloc[0])} rows; need at least 5 per class to split and "
                "cross-validate"
            )
        stratify = df[target_column]
    for name, col in (("group_column", group_column), ("time_column", time_column)):
        if col is not None and col not in df.columns:
            raise DataError(
                f"{name}: column {col!r} not found; available columns: "
                f"{', '.join(map(str, df.columns))}"
            )
    val_share = val_size / (1 - test_size)
    if time_column is not None:
        import pandas as pd

        order = pd.to_datetime(df[time_column], errors="coerce", format="mixed")
        if order.isna().any() and pd.api.types.is_numeric_dtype(df[time_column]):
            order = df[time_column]
        if pd.isna(order).any():
            raise DataError(f"time_column: {time_column!r} has missing or unparseable values")
        df = df.iloc[order.argsort(kind="stable").to_numpy()].reset_index(drop=True)
        n_test = max(1, round(len(df) * test_size))
        n_val = max(1, round(len(df) * val_size))
        train, val, test = (
            df.iloc[: len(df) - n_test - n_val],
            df.iloc[len(df) - n_test - n_val : len(df) - n_test],
            df.iloc[len(df) - n_test :],
        )
        stratify = None
    elif group_column is not None:
        from sklearn.model_selection import GroupShuffleSplit

        def by_group(frame: Any, size: float) -> tuple[Any, Any]:
            gss = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
            keep, held = next(gss.split(frame, groups=frame[group_column].astype(str)))
            return frame.iloc[keep], frame.iloc[held]

        rest, test = by_group(df, test_size)
        train, val = by_group(rest, val_share)
        stratify = None
    else:
        rest, test = train_test_split(df, test_size=test_size, random_state=seed, stratify=stratify)
        train, val = train_test_split(
            rest,
            test_size=val_share,
            random_state=seed,
            stratify=rest[target_column] if stratify is not None else None,
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, part in (("train", train), ("val", val), ("test", test)):
        p = out / f"{name}.parquet"
        part.reset_index(drop=True).to_parquet(p, index=False)
        paths[name] = str(p)
    result: dict[str, Any] = {
        "train_path": paths["train"],
        "val_path": paths["val"],
        "test_path": paths["test"],
        "rows": {"train": len(train), "val": len(val), "test": len(test)},
        "train_rows": len(train),
        "val_rows": len(val),
        "test_rows": len(test),
        "dropped_missing_target": before - len(df),
        "stratified": stratify is not None,
        "group_column": group_column,
        "time_column": time_column,
        "split_kind": "time_ordered"
        if time_column
        else "grouped"
        if group_column
        else "stratified"
        if stratify is not None
        else "random",
        "seed": seed,
        "target_column": target_column,
    }
    if stratify is not None:
        result["class_shares"] = {
            name: {
                str(k): round(float(v), 4)
                for k, v in part[target_column].value_counts(normalize=True).sort_index().items()
            }
            for name, part in (("train", train), ("val", val), ("test", test))
        }
    return result


# --------------------------------------------------------------------------- shared checks


def resolve_inside(user_path: str, base_dir: str | None) -> Path:
    """``user_path`` resolved against ``base_dir``; refuses anything that lands outside it."""
    base = Path(base_dir or Path.cwd()).resolve()
    candidate = Path(user_path).expanduser()
    resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if not resolved.is_relative_to(base):
        raise DataError(
            f"{user_path}: path resolves outside the allowed folder {base}; copy the file "
            f"into it (e.g. {base / 'data' / resolved.name}) and give its path relative to "
            f"{base}"
        )
    if not resolved.exists():
        raise DataError(
            f"{user_path}: file not found (looked at {resolved}; relative paths are "
            f"resolved against {base})"
        )
    if not resolved.is_file():
        raise DataError(f"{user_path}: not a file (looked at {resolved})")
    return resolved


RUNS_DIR = "runs"
ARTIFACTS_DIR = "mlartifacts"


def source_path(uri: str, workspace_root: str | Path, thread_id: str | None = None) -> Path:
    """The file a data source names, resolved inside the workspace (:func:`resolve_inside`);
    also refuses a file inside another thread's run folder (``runs/<other>/``) or inside
    MLflow's artifact store: one project may not read another's data (DataError)."""
    root = Path(workspace_root).resolve()
    user_path = Path(uri.removeprefix("file://")).expanduser()
    where = (user_path if user_path.is_absolute() else root / user_path).resolve()
    parts = where.relative_to(root).parts if where.is_relative_to(root) else ()
    if len(parts) >= 2 and parts[0] == RUNS_DIR and parts[1] != thread_id:
        raise DataError(
            f"{uri}: inside the run folder of thread {parts[1]!r} ({root / RUNS_DIR / parts[1]}); "
            "one project may not read another's data: name the original data source instead"
        )
    if parts and parts[0] == ARTIFACTS_DIR:
        raise DataError(
            f"{uri}: inside MLflow's artifact store ({root / ARTIFACTS_DIR}), which holds every "
            "project's logged files; name the original data source instead"
        )
    return resolve_inside(uri.removeprefix("file://"), str(root))


MAX_COLUMNS = 2_000
"""Widest table mpm reads. Checked from the header (CSV) or the footer (Parquet) before
the data is loaded, so a file with millions of columns never reaches pandas."""
_HEADER_BYTES = 4_000_000


def _column_count(path: Path, suffix: str) -> int:
    """Columns of the table, read without loading it (CSV: the first line, at most 4 MB)."""
    if suffix == ".csv":
        import csv

        with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
            head = handle.read(_HEADER_BYTES)
        first = head.split("\n", 1)[0]
        if len(head) >= _HEADER_BYTES and "\n" not in head:
            return max(first.count(",") + 1, MAX_COLUMNS + 1)
        try:
            return len(next(csv.reader([first]), []))
        except csv.Error:
            return first.count(",") + 1
    try:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_columns)
    except Exception:  # noqa: BLE001 - unreadable: read_parquet below says why
        return 0


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a data frame, or a DataError saying why it cannot be read."""
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(
            f"{path.name}: unsupported file format {suffix or '(no extension)'!r}; "
            f"expected one of {', '.join(FILE_SUFFIXES)}"
        )
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: file is empty")
    try:
        width = _column_count(path, suffix)
    except OSError as exc:  # permissions, a file that went away, an unreadable mount
        raise DataError(f"{path.name}: cannot read: {exc.strerror or exc}") from exc
    if width > MAX_COLUMNS:
        raise DataError(
            f"{path.name}: {width:,} columns exceed the limit of {MAX_COLUMNS:,} columns"
        )
    try:
        df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path.name}: file is empty (no header row)") from exc
    except Exception as exc:  # parser, encoding and arrow errors all mean "unreadable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path.name}: cannot read as {suffix[1:].upper()}: {first}") from exc
    if df.shape[1] == 0:
        raise DataError(f"{path.name}: file has no columns")
    if len(df) == 0:
        raise DataError(f"{path.name}: file has a header but no data rows")
    return df


def check_target(df: pd.DataFrame, target_column: str, model_type: str, where: str) -> None:
    """Raise DataError unless ``target_column`` exists and suits ``model_type``."""
    import pandas as pd

    if target_column not in df.columns:
        raise DataError(
            f"{where}: target column {target_column!r} not found; available columns: "
            f"{', '.join(map(str, df.columns))}"
        )
    target = df[target_column].dropna()
    if target.empty:
        raise DataError(f"{where}: target column {target_column!r} has no values (all missing)")
    if model_type == "regression":
        if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
            raise DataError(
                f"{where}: target column {target_column!r} is {target.dtype} but regression needs "
                "a numeric target; use model_type classification or pick a numeric column"
            )
        if target.nunique() < 2:
            raise DataError(
                f"{where}: target column {target_column!r} is constant; nothing to learn"
            )
    else:
        n_classes = target.nunique()
        if n_classes < 2:
            only = target.iloc[0]
            only = only.item() if hasattr(only, "item") else only  # 1, not np.int64(1)
            raise DataError(
                f"{where}: target column {target_column!r} has a single class "
                f"({only!r}); classification needs at least two"
            )
        if pd.api.types.is_float_dtype(target) and n_classes > 50:
            raise DataError(
                f"{where}: target column {target_column!r} looks continuous ({n_classes} distinct "
                "values); use model_type regression"
            )


# --------------------------------------------------------------------------- helpers


def load_sklearn(name: str) -> tuple[pd.DataFrame, str, str]:
    import sklearn.datasets as skd

    key = name.lower()
    if key not in SKLEARN_DATASETS:
        raise DataError(
            f"sklearn:{name}: unknown or not bundled scikit-learn dataset; expected one of "
            f"{', '.join(SKLEARN_DATASETS)} (datasets that need a download are not allowed)"
        )
    bunch = getattr(skd, f"load_{key}")(as_frame=True)
    df = bunch.frame.copy()
    first_line = (bunch.DESCR or "").strip().splitlines()
    description = next((ln.strip(" .*") for ln in first_line if ln.strip(" .*_-=")), key)
    return df, "target", f"scikit-learn {key} dataset ({description})"


def choose_target(df: pd.DataFrame, requested: str | None, default: str | None, where: str) -> str:
    if requested:
        if requested not in df.columns:
            raise DataError(
                f"{where}: target column {requested!r} not found; available columns: "
                f"{', '.join(map(str, df.columns))}"
            )
        return requested
    if default and default in df.columns:
        return default
    for guess in _TARGET_GUESSES:
        if guess in df.columns:
            return guess
    raise DataError(
        f"{where}: no target column given and none named {', '.join(_TARGET_GUESSES)}; set "
        f"target_column to one of: {', '.join(map(str, df.columns))}"
    )


def _check_rows(df: pd.DataFrame, where: str) -> None:
    if len(df) < MIN_ROWS:
        raise DataError(
            f"{where}: only {len(df)} rows; need at least {MIN_ROWS} to split into "
            "train/validation/test and cross-validate"
        )


def _normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """String column names, no duplicates, booleans as 0/1 (Parquet, sklearn and MLflow
    signatures all handle those the same way)."""
    import pandas as pd

    names = [str(c) for c in df.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"columns: duplicate column names {', '.join(dupes)}; rename them")
    df = df.copy()
    df.columns = names
    for col in df.columns:
        if pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].astype("int64")
    return df

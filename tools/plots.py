"""PNG plots drawn with Matplotlib's object API (no pyplot).

pyplot keeps global state and is not thread-safe; graph nodes run in worker threads, so
every figure here is a standalone ``Figure`` rendered by the Agg canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _figure(width: float = 6.4, height: float = 4.4) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return str(path)


def bar(
    path: Path, labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str
) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    ax.bar([str(x) for x in labels], values, color="#4C72B0")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=45 if len(labels) > 6 else 0)
    return _save(fig, path)


def histogram(path: Path, values: Any, *, title: str, xlabel: str, bins: int = 40) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, color="#4C72B0", edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _save(fig, path)


def heatmap(path: Path, matrix: Any, labels: Sequence[str], *, title: str) -> str:
    n = len(labels)
    size = min(4.5 + 0.28 * n, 14)
    fig = _figure(size, size * 0.85)
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), [str(x) for x in labels], rotation=90, fontsize=7)
    ax.set_yticks(range(n), [str(x) for x in labels], fontsize=7)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)


def feature_by_class(path: Path, groups: dict[str, Any], *, feature: str, title: str) -> str:
    """Box plot of one numeric feature per target class."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.boxplot(list(groups.values()), tick_labels=[str(k) for k in groups], showfliers=False)
    ax.set_title(title)
    ax.set_xlabel("target class")
    ax.set_ylabel(feature)
    return _save(fig, path)


def scatter(
    path: Path, x: Any, y: Any, *, title: str, xlabel: str, ylabel: str, diagonal: bool = False
) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(x, y, s=6, alpha=0.4, color="#4C72B0")
    if diagonal:
        lo, hi = float(min(min(x), min(y))), float(max(max(x), max(y)))
        ax.plot([lo, hi], [lo, hi], color="#C44E52", linewidth=1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _save(fig, path)


def calibration(path: Path, bins: Sequence[dict[str, float]], *, title: str) -> str:
    """Reliability diagram: mean predicted probability vs observed frequency per bin."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    xs = [b["mean_predicted"] for b in bins if b["count"]]
    ys = [b["fraction_positive"] for b in bins if b["count"]]
    ax.plot(xs, ys, marker="o", color="#4C72B0", label="model")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return _save(fig, path)


STATUS_COLOURS = {"success": "#2e7d32", "failed_with_fallback": "#f9a825"}


def stage_durations(path: Path, rows: Sequence[dict[str, Any]], *, title: str) -> Path:
    """Horizontal bars of each stage's wall time, coloured by status (green success,
    amber fallback, red anything else).

    Drawn with fixed margins sized from the longest label instead of ``tight_layout``
    (which lays the figure out twice and was most of the plot's cost), at 100 dpi."""
    names = [str(r["name"]) for r in rows]
    longest = max((len(n) for n in names), default=1)
    width, height = 7.0, 0.9 + 0.4 * max(len(rows), 1)
    fig = _figure(width, height)
    left = min(0.55, (0.35 + 0.075 * longest) / width)
    fig.subplots_adjust(left=left, right=0.97, top=1 - 0.35 / height, bottom=0.55 / height)
    ax = fig.add_subplot()
    ax.barh(
        names,
        [float(r["duration_s"]) for r in rows],
        color=[STATUS_COLOURS.get(str(r["status"]), "#c62828") for r in rows],
    )
    ax.invert_yaxis()
    ax.set_xlabel("wall time (s)")
    ax.set_title(title)
    fig.savefig(path, format="png")
    return path

"""PNG plots drawn with Matplotlib's object API (no pyplot), and the run's stage-duration
chart drawn with Pillow (see :func:`stage_durations`).

pyplot keeps global state and is not thread-safe; graph nodes run in worker threads, so
every figure here is a standalone ``Figure`` rendered by the Agg canvas. Matplotlib is
imported only inside the functions that draw with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
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
OTHER_STATUS = "#c62828"


def _nice_step(top: float, ticks: int = 5) -> float:
    """A 1/2/5 x 10^k tick step giving about ``ticks`` intervals up to ``top``."""
    import math

    raw = max(top, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


@lru_cache(maxsize=4)
def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def stage_durations(path: Path, rows: Sequence[dict[str, Any]], *, title: str) -> Path:
    """Horizontal bars of each stage's wall time, coloured by status (green success,
    amber fallback, red anything else), as a PNG.

    Drawn with Pillow rather than Matplotlib: one small chart at the end of every run,
    where Matplotlib's figure machinery cost ~60 ms of CPU (and ~0.6 s to import) against
    ~2 ms here. Pillow's built-in scalable font; nothing else is loaded."""
    from PIL import Image, ImageDraw

    font, small = _font(14), _font(12)
    names = [str(r["name"]) for r in rows]
    values = [max(float(r["duration_s"] or 0.0), 0.0) for r in rows]
    label_w = int(max((font.getlength(n) for n in names), default=0)) + 16
    width, bar_h, gap, top, bottom = 760, 22, 10, 40, 48
    plot_w = width - label_w - 24
    height = top + len(rows) * (bar_h + gap) + bottom
    step = _nice_step(max(values, default=0.0) or 1.0)
    ticks = [step * i for i in range(int(max(values, default=0.0) / step) + 2)]
    scale = plot_w / ticks[-1]
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width / 2, 12), title, fill="black", font=font, anchor="mt")
    axis_y = top + len(rows) * (bar_h + gap)
    for tick in ticks:
        x = label_w + tick * scale
        draw.line([(x, top - 4), (x, axis_y)], fill="#e0e0e0")
        draw.text((x, axis_y + 6), f"{tick:g}", fill="black", font=small, anchor="mt")
    for i, (name, value, row) in enumerate(zip(names, values, rows, strict=True)):
        y = top + i * (bar_h + gap)
        colour = STATUS_COLOURS.get(str(row["status"]), OTHER_STATUS)
        draw.rectangle([label_w, y, label_w + max(value * scale, 1), y + bar_h], fill=colour)
        draw.text((label_w - 8, y + bar_h / 2), name, fill="black", font=font, anchor="rm")
    draw.line([(label_w, top - 4), (label_w, axis_y)], fill="black")
    draw.line([(label_w, axis_y), (label_w + plot_w, axis_y)], fill="black")
    draw.text(
        (label_w + plot_w / 2, height - 8), "wall time (s)", fill="black", font=font, anchor="mb"
    )
    image.save(path, format="PNG")
    return path

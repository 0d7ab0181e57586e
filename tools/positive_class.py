"""Which class of a binary target is the positive one: ``resolve_positive_class``.

Every binary figure mpm reports (precision, recall, F1, ROC AUC, the decision threshold,
the served probability, every fairness rate) is *for one class*. Taking "the larger
label" silently (scikit-learn's ``classes_[1]``) gets breast_cancer backwards: its label
1 is *benign*, while the objective is "likelihood of malignancy". So the positive class
is chosen explicitly, in this order, and the choice is always stated with its reason:

1. ``stated`` -- the requirements' ``positive_class``, matched against the label values
   and, for a data set that names its labels (scikit-learn ``target_names``), the names;
   a value that matches no class is an error, never a guess.
2. ``objective`` -- the one class whose name the business objective uses ("likelihood of
   malignancy" names ``malignant``; word stems count, so malignancy ~ malignant).
3. ``minority`` -- the rarer class in the training data: what a project usually wants to
   detect (defaults, fraud, churn, disease).
4. ``larger_label`` -- only when both classes are exactly as frequent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mpm.tools.errors import DataError

_WORD = re.compile(r"[a-z0-9]+")
MIN_STEM = 5  # shortest shared prefix that makes two words the same stem
# Label values that say nothing about what they mean: an objective's "no" names no class.
_GENERIC = frozenset({"yes", "no", "y", "n", "true", "false", "t", "f", "pos", "neg"})


def label_names(uri: str | None) -> dict[str, str]:
    """``{str(label value): name}`` for a source that names its classes (scikit-learn's
    bundled data sets: breast_cancer 0 = malignant, 1 = benign); ``{}`` otherwise."""
    if not uri or not str(uri).startswith("sklearn:"):
        return {}
    from mpm.tools.datasets import SKLEARN_DATASETS

    name = str(uri).removeprefix("sklearn:").strip().lower()
    if name not in SKLEARN_DATASETS or name in {"diabetes"}:
        return {}
    import sklearn.datasets as skd

    bunch = getattr(skd, f"load_{name}")()
    names = getattr(bunch, "target_names", None)
    if names is None:
        return {}
    return {str(i): str(n) for i, n in enumerate(names)}


def source_classes(uri: str | None, *, rows: int | None = None, seed: int = 42) -> dict[str, Any]:
    """The target classes a built-in source has, known before any data is acquired:
    ``{target, labels, names, counts}`` for ``sklearn:<name>`` and ``synthetic:<schema>``
    (``{}`` for files and unknown sources). Kickoff offers these labels by name."""
    uri = str(uri or "").strip()
    if uri.startswith("sklearn:"):
        from mpm.tools.datasets import SKLEARN_DATASETS

        name = uri.removeprefix("sklearn:").strip().lower()
        if name not in SKLEARN_DATASETS or name == "diabetes":
            return {}
        import numpy as np
        import sklearn.datasets as skd

        target = getattr(skd, f"load_{name}")().target
        labels, counts = np.unique(target, return_counts=True)
        return {
            "target": "target",
            "labels": [_scalar(v) for v in labels],
            "names": label_names(uri),
            "counts": {_scalar(v): int(n) for v, n in zip(labels, counts, strict=True)},
        }
    if uri.startswith("synthetic:"):
        from mpm.tools.synthetic import SCHEMA_INFO, generate

        schema = uri.removeprefix("synthetic:").strip().lower()
        if schema not in SCHEMA_INFO:
            return {}
        target = SCHEMA_INFO[schema][0]
        y = generate(schema, min(int(rows or 2000), 2000), seed)[target]
        counts = y.value_counts()
        return {
            "target": target,
            "labels": sorted(_scalar(v) for v in counts.index),
            "names": {},
            "counts": {_scalar(k): int(v) for k, v in counts.items()},
            "meaning": SCHEMA_INFO[schema][2],
        }
    return {}


def training_requirements(requirements: Mapping[str, Any]) -> dict[str, Any]:
    """The requirement fields training needs to choose the positive class and keep the
    sensitive attributes out of the features (keyword arguments of ``train_candidates``)."""
    sources = requirements.get("data_sources") or [{}]
    return {
        "positive_class": requirements.get("positive_class"),
        "objective": requirements.get("business_objective"),
        "label_names": label_names(sources[0].get("uri")),
        "sensitive_attributes": list(requirements.get("sensitive_attributes") or []),
        "use_sensitive_attributes": bool(requirements.get("use_sensitive_attributes")),
    }


def _scalar(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def display(label: Any, names: Mapping[str, str] | None) -> str:
    """``malignant (label 0)`` where the data names its labels, else the label itself."""
    name = (names or {}).get(str(_scalar(label)))
    return f"{name} (label {_scalar(label)})" if name else str(_scalar(label))


def _same_stem(a: str, b: str) -> bool:
    if a == b:
        return True
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n >= MIN_STEM and n >= min(len(a), len(b)) - 2


def _named_by(text: str, name: str) -> bool:
    words = _WORD.findall(text.lower())
    wanted = _WORD.findall(name.lower())
    if not wanted or any(w.isdigit() or w in _GENERIC or len(w) < 3 for w in wanted):
        return False  # a number, "yes" or "no" in the objective names no class
    return all(any(_same_stem(w, t) for t in words) for w in wanted)


def resolve_positive_class(
    classes: Sequence[Any],
    *,
    counts: Mapping[Any, int] | None = None,
    stated: str | None = None,
    objective: str | None = None,
    names: Mapping[str, str] | None = None,
    target_column: str | None = None,
) -> dict[str, Any]:
    """The positive class of a binary target and why: ``{label, name, display, source,
    reason, classes}`` (``label`` is the value as it is in the data). Raises
    ``DataError`` when ``stated`` is not one of the classes."""
    classes = [_scalar(c) for c in classes]
    if len(classes) != 2:
        raise DataError(f"positive class: a binary target has two classes; got {len(classes)}")
    names = {str(k): str(v) for k, v in (names or {}).items()}
    where = f" of {target_column!r}" if target_column else ""

    def result(label: Any, source: str, reason: str) -> dict[str, Any]:
        return {
            "label": label,
            "name": names.get(str(label), str(label)),
            "display": display(label, names),
            "source": source,
            "reason": reason,
            "classes": [display(c, names) for c in classes],
        }

    if stated is not None and str(stated).strip():
        want = str(stated).strip().lower()
        hits = [
            c
            for c in classes
            if str(c).strip().lower() == want or names.get(str(c), "").strip().lower() == want
        ]
        if not hits:
            raise DataError(
                f"positive_class: {stated!r} is not a class{where}; expected one of "
                + ", ".join(display(c, names) for c in classes)
            )
        return result(hits[0], "stated", f"stated in the requirements (positive_class: {stated})")
    if objective:
        named = [c for c in classes if _named_by(objective, names.get(str(c), str(c)))]
        if len(named) == 1:
            label = named[0]
            return result(
                label,
                "objective",
                f"inferred: the business objective names {names.get(str(label), str(label))!r}",
            )
    if counts:
        n = {c: int(counts.get(c, counts.get(str(c), 0))) for c in classes}
        low, high = sorted(classes, key=lambda c: n[c])
        if n[low] != n[high]:
            share = n[low] / max(1, n[low] + n[high])
            return result(
                low,
                "minority",
                f"inferred: the minority class ({share:.1%} of {n[low] + n[high]} "
                "rows); no positive_class was stated and the objective names neither class",
            )
    label = sorted(classes)[-1]
    return result(
        label,
        "larger_label",
        "inferred: both classes equally frequent and neither named; the larger label",
    )

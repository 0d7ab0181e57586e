"""Degenerate and chance-level models, caught at validation: ``degenerate_findings``.

A model that predicts "no" for every test row can still clear an accuracy target on an
imbalanced test set, and its fairness figures come out as a perfect 0 (nobody is
selected, so every group is selected equally). A validator rejects such a model on
sight; so does mpm. Each check below is a *blocking* finding (the same channel as the
leakage findings, so fail-closed refuses registration) with a stable id and its
evidence:

* ``model.single_class_predictions`` -- every test prediction is the same class.
* ``model.constant_scores`` -- the positive-class probability (classification) or the
  prediction (regression, ``model.constant_predictions``) is the same for every row: the
  model ranks nothing.
* ``model.chance_level_auc`` -- the test ROC AUC is indistinguishable from chance: the
  95% interval of a stratified percentile bootstrap (``BOOTSTRAP_RESAMPLES`` resamples of
  the test rows, positives and negatives resampled separately, fixed seed) contains 0.5
  (or lies below it: worse than chance).
* ``fairness.trivial_parity`` -- sensitive attributes are evaluated but a class is never
  predicted, so the parity and equalised-odds differences are trivially zero and say
  nothing about fairness.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
CHANCE_AUC = 0.5
CONSTANT_TOLERANCE = 1e-9  # spread of scores below this: constant
_BLOCK_CELLS = 4_000_000  # resampled scores held at once


def _blocking(fid: str, reason: str, evidence: dict[str, Any]) -> dict[str, Any]:
    category, kind = fid.split(".", 1)
    return {
        "id": fid,
        "category": category,
        "kind": kind,
        "column": None,
        "severity": "blocking",
        "reason": reason,
        "evidence": evidence,
    }


def _auc(pos_scores: Any, neg_scores: Any) -> Any:
    """ROC AUC per row of the (resamples, n) score arrays: the Mann-Whitney U statistic
    over the pooled ranks (ties averaged), divided by n_pos * n_neg."""
    import numpy as np
    from scipy.stats import rankdata

    pos_scores = np.atleast_2d(pos_scores)
    neg_scores = np.atleast_2d(neg_scores)
    n_pos, n_neg = pos_scores.shape[1], neg_scores.shape[1]
    ranks = rankdata(np.concatenate([pos_scores, neg_scores], axis=1), axis=1)
    u = ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def auc_interval(
    truth: Any,
    score: Any,
    *,
    seed: int = 42,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """ROC AUC of ``score`` for the boolean ``truth`` with its stratified percentile
    bootstrap interval."""
    import numpy as np

    truth = np.asarray(truth, dtype=bool)
    score = np.asarray(score, dtype=float)
    pos, neg = score[truth], score[~truth]
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(1, len(score)))  # bounded memory on big test sets
    values = np.concatenate(
        [
            _auc(
                pos[rng.integers(0, len(pos), size=(k, len(pos)))],
                neg[rng.integers(0, len(neg), size=(k, len(neg)))],
            )
            for k in (min(block, resamples - i) for i in range(0, resamples, block))
        ]
    )
    alpha = (1 - confidence) / 2
    lower, upper = np.quantile(values, [alpha, 1 - alpha])
    return {
        "auc": float(_auc(pos, neg)[0]),
        "lower": float(lower),
        "upper": float(upper),
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
        "n_positive": int(len(pos)),
        "n_negative": int(len(neg)),
        "method": "stratified percentile bootstrap of the test rows",
    }


def degenerate_findings(
    *,
    model_type: str,
    y_true: Any,
    y_pred: Any,
    proba: Any | None,
    classes: Sequence[Any],
    pos_label: Any = None,
    fairness_evaluated: bool = False,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(blocking findings, the evidence computed: ``{auc_interval, predicted_classes,
    score_spread}``) for the test-set predictions of one model."""
    import numpy as np

    findings: list[dict[str, Any]] = []
    evidence: dict[str, Any] = {}
    y_pred = np.asarray(y_pred)
    n = len(y_pred)
    if model_type != "classification":
        spread = float(np.ptp(y_pred.astype(float))) if n else 0.0
        evidence["prediction_range"] = spread
        if spread <= CONSTANT_TOLERANCE:
            findings.append(
                _blocking(
                    "model.constant_predictions",
                    f"the model predicts {float(y_pred[0]):.6g} for all {n} test rows",
                    {"value": float(y_pred[0]), "rows": n},
                )
            )
        return findings, evidence

    classes = list(classes)
    predicted = {str(c): int(np.sum(y_pred == c)) for c in classes}
    evidence["predicted_classes"] = predicted
    never = [c for c in classes if predicted[str(c)] == 0]
    if len([c for c in classes if predicted[str(c)] > 0]) <= 1:
        only = next((c for c in classes if predicted[str(c)] > 0), y_pred[0] if n else None)
        findings.append(
            _blocking(
                "model.single_class_predictions",
                f"the model predicts class {_s(only)!r} for all {n} test rows; "
                f"{', '.join(repr(_s(c)) for c in never)} never predicted",
                {"predicted": predicted, "rows": n},
            )
        )
    if fairness_evaluated and never:
        findings.append(
            _blocking(
                "fairness.trivial_parity",
                f"class {', '.join(repr(_s(c)) for c in never)} is never predicted, so every "
                "group's rate for it is 0: the parity and equalised-odds differences are "
                "trivially zero and say nothing about fairness",
                {"never_predicted": [_s(c) for c in never]},
            )
        )
    if proba is None or len(classes) != 2:
        return findings, evidence
    from mpm.tools.metrics import positive_label

    pos = positive_label(classes, pos_label)
    score = np.asarray(proba, dtype=float)[:, classes.index(pos)]
    spread = float(np.ptp(score)) if n else 0.0
    evidence["score_spread"] = spread
    if spread <= CONSTANT_TOLERANCE:
        findings.append(
            _blocking(
                "model.constant_scores",
                f"the probability of {_s(pos)!r} is {score[0]:.4f} for all {n} test rows: "
                "the model ranks nothing",
                {"probability": float(score[0]), "rows": n},
            )
        )
    truth = np.asarray(y_true) == pos
    if 0 < truth.sum() < len(truth):
        ci = auc_interval(truth, score, seed=seed)
        evidence["auc_interval"] = ci
        if ci["lower"] <= CHANCE_AUC:
            where = (
                "below chance (the whole interval is under 0.5)"
                if ci["upper"] < CHANCE_AUC
                else "indistinguishable from chance (the interval contains 0.5)"
            )
            findings.append(
                _blocking(
                    "model.chance_level_auc",
                    f"test ROC AUC {ci['auc']:.3f} is {where}: {ci['confidence']:.0%} "
                    f"interval {ci['lower']:.3f} to {ci['upper']:.3f} from a {ci['method']} "
                    f"({ci['resamples']} resamples)",
                    {k: ci[k] for k in ("auc", "lower", "upper", "confidence", "resamples")},
                )
            )
    return findings, evidence


def _s(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x

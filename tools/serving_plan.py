"""The serving and monitoring plan for a registered pipeline model: ``write_serving_plan``.

Monitoring thresholds come from numbers the project already has: drift baselines from the
data profile, the performance alert from the success threshold, fairness bounds from the
validated model, so the plan says what "wrong" looks like for *this* model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mpm.tools.inert import code, md
from mpm.tools.metrics import LOWER_IS_BETTER

PSI_ALERT = 0.2  # population stability index: > 0.2 is the conventional "significant shift"
PSI_WARN = 0.1
FAIRNESS_BOUND = 0.1  # demographic parity / equalized odds difference alert level
FAIRNESS_SLACK = 0.05  # tolerated worsening over the validated value


def write_serving_plan(
    out_dir: str,
    *,
    model_info: Mapping[str, Any],
    profile: Mapping[str, Any],
    validation: Mapping[str, Any],
    requirements: Mapping[str, Any],
) -> dict[str, Any]:
    """Write ``serving_plan.md`` and ``monitoring_config.json`` to ``out_dir``.

    ``model_info`` is ``build_pipeline_model``'s result, ``profile`` ``profile_dataset``'s,
    ``validation`` ``validate_model``'s and ``requirements`` the project requirements as
    a dict. Returns ``{serving_plan_path, monitoring_config_path, monitoring_config}``.
    """
    model_info = _complete(model_info)
    metric = str(validation.get("target_metric") or requirements.get("target_metric") or "")
    threshold = requirements.get("success_threshold", validation.get("success_threshold"))
    inputs = list(model_info.get("input_columns") or profile.get("feature_columns") or [])
    drift = _drift_thresholds(profile, inputs)
    fairness_now = (validation.get("fairness") or {}).get("metrics", {})
    fairness_bounds = {
        name: {
            "validated_value": value,
            "alert_above": round(max(FAIRNESS_BOUND, value + FAIRNESS_SLACK), 4),
        }
        for name, value in fairness_now.items()
        if name in ("demographic_parity_difference", "equalized_odds_difference")
    }
    lower = metric in LOWER_IS_BETTER
    config: dict[str, Any] = {
        "model": {
            "registered_model_name": model_info.get("registered_model_name"),
            "version": model_info.get("version"),
            "model_uri": model_info.get("model_uri"),
            "run_id": model_info.get("run_id"),
        },
        "performance": {
            "metric": metric,
            "validated_value": validation.get("test_score"),
            "alert_threshold": threshold,
            "alert_when": f"{metric} {'>' if lower else '<'} {threshold}",
            "evaluation_window": "7d of predictions with ground truth",
            "min_labelled_rows": 200,
        },
        "data_drift": {
            "method": "population stability index (numeric: 10 quantile bins of the reference; categorical: reference frequencies)",
            "psi_warn": PSI_WARN,
            "psi_alert": PSI_ALERT,
            "features": drift,
        },
        "prediction_drift": _prediction_drift(validation),
        "fairness": {
            "sensitive_attributes": list(requirements.get("sensitive_attributes") or []),
            "bounds": fairness_bounds,
        },
        "schedule": "daily",
        "rollback": {
            "triggers": [
                f"{metric} breaches the alert threshold on two consecutive evaluation windows",
                "a fairness bound is exceeded",
                f"PSI > {PSI_ALERT} on any of the five most important inputs",
                "error rate of the serving endpoint > 1% over 1h",
            ],
            "action": "re-point the serving alias to the previous registered version; open a finding for the model owner",
            "previous_version": (int(model_info["version"]) - 1)
            if int(model_info.get("version") or 1) > 1
            else None,
        },
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "monitoring_config.json"
    config_path.write_text(json.dumps(config, indent=2, default=str, sort_keys=True))
    plan_path = out / "serving_plan.md"
    plan_path.write_text(_plan(config, model_info, requirements))
    return {
        "serving_plan_path": str(plan_path),
        "monitoring_config_path": str(config_path),
        "monitoring_config": config,
    }


def _complete(model_info: Mapping[str, Any]) -> dict[str, Any]:
    """Accept a stage's published outputs as well as ``build_pipeline_model``'s result:
    ``registered_model_version`` for ``version``, and the input columns read from the
    registered model when they were not passed."""
    info = dict(model_info)
    info.setdefault("version", info.get("registered_model_version"))
    if not info.get("input_columns") and info.get("model_uri"):
        try:
            from mpm.tools.pipeline_model import model_metadata

            info.update({k: v for k, v in model_metadata(str(info["model_uri"])).items() if v})
        except Exception:  # no store reachable: fall back to the profile's columns
            pass
    return info


def _drift_thresholds(profile: Mapping[str, Any], inputs: list[str]) -> dict[str, Any]:
    numeric = profile.get("numeric_summary") or {}
    categorical = profile.get("categorical_summary") or {}
    missing = profile.get("missing") or {}
    out: dict[str, Any] = {}
    for col in inputs:
        base_missing = float((missing.get(col) or {}).get("rate", 0.0))
        entry: dict[str, Any] = {
            "missing_rate_reference": base_missing,
            "missing_rate_alert": round(min(1.0, base_missing + 0.05), 4),
        }
        if col in numeric:
            s = numeric[col]
            std = s.get("std") or 0.0
            entry.update(
                kind="numeric",
                reference_mean=s.get("mean"),
                reference_std=std,
                mean_shift_alert=round(0.5 * std, 6) if std else None,
                expected_range=[s.get("p01"), s.get("p99")],
                psi_alert=PSI_ALERT,
            )
        elif col in categorical:
            entry.update(
                kind="categorical",
                reference_frequencies=categorical[col].get("frequencies", {}),
                unseen_category_rate_alert=0.05,
                psi_alert=PSI_ALERT,
            )
        out[col] = entry
    return out


def _prediction_drift(validation: Mapping[str, Any]) -> dict[str, Any]:
    cm = validation.get("confusion_matrix")
    if cm:
        matrix = cm["matrix"]
        total = sum(sum(r) for r in matrix) or 1
        predicted = {
            str(label): round(sum(row[i] for row in matrix) / total, 6)
            for i, label in enumerate(cm["labels"])
        }
        return {"kind": "class_shares", "reference": predicted, "psi_alert": PSI_ALERT}
    return {"kind": "mean_prediction", "psi_alert": PSI_ALERT}


def _plan(
    config: dict[str, Any], model_info: Mapping[str, Any], requirements: Mapping[str, Any]
) -> str:
    perf = config["performance"]

    def names(values: Any) -> str:
        return ", ".join(md(v) for v in values or [])

    # names, columns and requirement text are input: inert Markdown (tools/inert.py)
    lines = [
        f"# Serving plan: {md(model_info.get('registered_model_name'))} v{md(model_info.get('version'))}",
        "",
        f"Project: {md(requirements.get('project_name', '-'))}. Model URI: `{code(model_info.get('model_uri'))}`.",
        "",
        "## Serving",
        "",
        f'- Load with `mlflow.pyfunc.load_model("{code(model_info.get("model_uri"))}")`; input: a table with the columns '
        f"{names(model_info.get('input_columns')) or '(see signature)'}.",
        f"- Output: {names(model_info.get('output_columns')) or 'prediction'}.",
        f"- Dependencies pinned: {names(model_info.get('pip_requirements'))}.",
        "- Batch scoring or a REST endpoint (`mlflow models serve`) both use the same signature; "
        "requests that miss a column are rejected by the schema check.",
        "",
        "## Monitoring",
        "",
        f"- Performance: alert when {md(perf['alert_when'])} (validated value {md(perf['validated_value'])}).",
        f"- Data drift: PSI warn {PSI_WARN}, alert {PSI_ALERT} per feature; missing-rate and range checks "
        f"against the training profile ({len(config['data_drift']['features'])} features).",
    ]
    for name, b in config["fairness"]["bounds"].items():
        lines.append(
            f"- Fairness: {md(name)} alert above {b['alert_above']} (validated {b['validated_value']:.4f})."
        )
    lines += ["", "## Rollback", ""]
    lines += [f"- Trigger: {md(t)}" for t in config["rollback"]["triggers"]]
    lines.append(f"- Action: {md(config['rollback']['action'])}.")
    return "\n".join(lines) + "\n"

"""The MLflow pyfunc pipeline model, logged as "model from code".

MLflow copies this file into the logged model, so it must stand alone: it imports only
MLflow, scikit-learn (through joblib), pandas and NumPy, never the ``tools`` package, and
the serving side needs nothing but the pinned ``pip_requirements``.

Pipeline: input validation (pre-processing) -> the fitted scikit-learn pipeline
(feature preprocessing + model) -> post-processing. Classification returns
``prediction`` (class label) and ``probability`` (binary: probability of the positive
class, compared with the decision threshold, which a request may override with
``params={"decision_threshold": t}``; multiclass: probability of the predicted
class, plus ``probability_<label>`` per class). Regression returns ``prediction``
clipped to the training target range and rounded.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class PipelineModel(PythonModel):
    def load_context(self, context: Any) -> None:
        import joblib

        self.pipeline = joblib.load(context.artifacts["sklearn_pipeline"])
        with open(context.artifacts["pipeline_config"], encoding="utf-8") as fh:
            self.config = json.load(fh)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        import numpy as np

        cfg = self.config
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        frame = frame.copy()
        for col in cfg["optional_columns"]:  # gaps the imputers were trained for
            if col not in frame.columns:
                frame[col] = np.nan
        missing = [c for c in cfg["input_columns"] if c not in frame.columns]
        if missing:
            raise ValueError(f"model input is missing columns: {', '.join(missing)}")
        x = frame[cfg["input_columns"]]
        if cfg["model_type"] == "classification":
            proba = self.pipeline.predict_proba(x)
            classes = np.asarray(self.pipeline.classes_, dtype=object)
            if len(classes) == 2:
                pos = list(classes).index(cfg["positive_label"])
                p = proba[:, pos]
                threshold = float(
                    (params or {}).get("decision_threshold", cfg["decision_threshold"])
                )
                labels = np.where(p > threshold, classes[pos], classes[1 - pos])
            else:
                idx = proba.argmax(axis=1)
                labels, p = classes[idx], proba[np.arange(len(idx)), idx]
            out = pd.DataFrame({"prediction": labels, "probability": p.astype(float)})
            out["prediction"] = out["prediction"].astype(cfg["label_dtype"])
            if (
                len(classes) > 2
            ):  # every class's probability, so scores like ROC AUC can be computed
                for i, label in enumerate(classes):
                    out[f"probability_{label}"] = proba[:, i].astype(float)
            return out
        y = np.asarray(self.pipeline.predict(x), dtype=float)
        lo, hi = cfg["clip"]
        return pd.DataFrame({"prediction": np.round(np.clip(y, lo, hi), cfg["round_decimals"])})


set_model(PipelineModel())

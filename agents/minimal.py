"""The ``minimal`` toolset: the real agents' tool names, each doing the least real work
that lets governance judge the run on measured facts.

``benchmarks/overhead.py`` measures what the graph itself costs per super-step. With
``noop`` tools nothing is measured, so fail-closed governance rightly refuses
registration and the run ends ``partial``; that is not the run a user has. Here every
stage produces its required outputs for real, on the requirements' own data source:

* data_wrangler: the real ``acquire_dataset`` and ``split_dataset`` (Parquet splits);
* model_developer: one scikit-learn pipeline (standard scaling + logistic or ridge
  regression, numeric columns only) fitted on the training split, saved with joblib;
* model_validator: the target metric measured on the test split with ``tools/metrics``,
  compared with the stated threshold (``meets_threshold``), no other checks;
* mlops: the real ``register_pipeline_model`` (fail-closed refusal, gate check, pyfunc
  logging, MLflow registration) against the MLflow store ``MLFLOW_TRACKING_URI`` names
  (required): the run's tracking stays off, so no other node logs to MLflow, and
  synthesis finds the registered model for its generated test suite there;
* business_analyst / data_scientist: success criteria, risks and a recommendation
  taken from what the requirements state and the data shows (class counts), nothing
  invented.

Every other tool of the real procedure (profiling, quality checks, EDA plots, explanation,
serving, the app) answers at once, as in ``noop``. What this toolset skips is ML work,
not orchestration: the benchmark reports the time spent inside tools separately.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel

from mpm.agents.base import AgentSpec, Toolkit
from mpm.agents.mlops_engineer import MLOpsToolkit

MODEL_NAME = "minimal_linear"
REGISTRY_EXPERIMENT = "mpm_minimal_registry"


class ToolTime:
    """Wall and thread-CPU seconds spent inside the minimal tools' real work, summed over
    every stage thread, so a benchmark can tell the ML work apart from orchestration.
    The work runs in the stage's own thread (no pools), so its thread CPU is all of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wall_s = self.cpu_s = 0.0
        self.calls = 0

    @contextmanager
    def measure(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            with self._lock:
                self.wall_s += time.perf_counter() - wall
                self.cpu_s += time.thread_time() - cpu
                self.calls += 1

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {"wall_s": self.wall_s, "cpu_s": self.cpu_s, "calls": self.calls}


TOOL_TIME = ToolTime()


class MinimalToolkit(Toolkit):
    """Tools named as the real agent's; ``work`` names the ones that do real work."""

    tool_names: tuple[str, ...] = ()
    work: tuple[str, ...] = ()

    def tools(self) -> list[BaseTool]:
        return [self._make(n) for n in self.tool_names]

    def _make(self, name: str) -> BaseTool:
        method = getattr(self, name) if name in self.work else None

        def run() -> dict[str, Any]:
            if method is None:
                return {"summary": f"{name}: skipped (minimal toolset)"}
            with TOOL_TIME.measure():
                return method()

        return StructuredTool.from_function(
            func=run, name=name, description=f"{name} (minimal toolset)", args_schema=_NoArgs
        )


class _NoArgs(BaseModel):
    """Minimal tools take no arguments (the procedure's arguments tune real tools only)."""


class BusinessAnalysis(MinimalToolkit):
    required_outputs = ("success_criteria", "risk_register_path")
    work = ("analyse_requirements", "assess_risks")

    def analyse_requirements(self) -> dict[str, Any]:
        from mpm.tools.metrics import lower_is_better

        req = self.ctx.requirements
        op = "<=" if lower_is_better(str(req["target_metric"]).casefold()) else ">="
        criteria = [f"test {req['target_metric']} {op} {req['success_threshold']}"]
        self.publish(outputs={"success_criteria": criteria})
        return {"summary": f"success criterion as stated: {criteria[0]}"}

    def assess_risks(self) -> dict[str, Any]:
        risks = [
            {"risk": str(c), "source": "requirements.constraints"}
            for c in self.ctx.requirements.get("constraints") or []
        ]
        path = self.ctx.stage_dir / "risk_register.json"
        path.write_text(json.dumps(risks, indent=2), encoding="utf-8")
        self.publish(outputs={"risk_register_path": str(path), "risks": risks})
        return {"summary": f"{len(risks)} stated constraints recorded as risks"}


class DataAcquisition(MinimalToolkit):
    required_outputs = ("train_path", "val_path", "test_path", "target_column")
    work = ("acquire_data", "split_data")

    def acquire_data(self) -> dict[str, Any]:
        from mpm.tools.datasets import acquire_dataset

        source = self.ctx.requirements["data_sources"][0]
        info = acquire_dataset(
            source["uri"],
            str(self.ctx.stage_dir),
            target_column=self.ctx.requirements.get("target_column"),
            rows=source.get("rows"),
            seed=self.ctx.seed,
            base_dir=str(self.ctx.workspace_root),
        )
        self.publish(
            outputs={"raw_path": info["path"], "target_column": info["target_column"]},
            metrics={"n_rows": info["rows"]},
        )
        return {"summary": f"{info['rows']} rows from {source['uri']}"}

    def split_data(self) -> dict[str, Any]:
        from mpm.tools.datasets import split_dataset

        split = split_dataset(
            self.outcome.outputs["raw_path"],
            self.outcome.outputs["target_column"],
            str(self.ctx.stage_dir),
            seed=self.ctx.seed,
            model_type=self.ctx.requirements["model_type"],
        )
        self.publish(outputs={k: split[k] for k in ("train_path", "val_path", "test_path")})
        return {"summary": f"split {split['rows']}"}


class ExploratoryAnalysis(MinimalToolkit):
    required_outputs = ("recommendations",)
    work = ("run_eda",)

    def run_eda(self) -> dict[str, Any]:
        from mpm.tools.datasets import read_table

        train = read_table(_path(self.ctx.upstream_output("train_path")))
        target = self.ctx.upstream_output("target_column")
        if self.ctx.requirements["model_type"] == "classification":
            counts = train[target].value_counts().to_dict()
            note = "training classes: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        else:
            note = f"training target mean {float(train[target].mean()):.4g}"
        self.publish(outputs={"recommendations": [note]})
        return {"summary": note}


class ModelDevelopment(MinimalToolkit):
    required_outputs = ("model_path", "best_model_name")
    work = ("train_candidates", "train_baseline")

    def train_candidates(self) -> dict[str, Any]:
        import joblib
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from mpm.tools.datasets import read_table

        target = self.ctx.upstream_output("target_column")
        train = read_table(_path(self.ctx.upstream_output("train_path")))
        x, y = train.drop(columns=[target]).select_dtypes("number"), train[target]
        classify = self.ctx.requirements["model_type"] == "classification"
        estimator = LogisticRegression(max_iter=500) if classify else Ridge()
        model = make_pipeline(StandardScaler(), estimator).fit(x, y)
        path = self.ctx.stage_dir / "model.joblib"
        joblib.dump(model, path)
        self.publish(outputs={"model_path": str(path), "best_model_name": MODEL_NAME})
        return {"summary": f"fitted {MODEL_NAME} on {len(train)} rows"}

    train_baseline = train_candidates


class ModelValidation(MinimalToolkit):
    required_outputs = ("meets_threshold", "test_score", "validation_passed")
    work = ("validate_model",)

    def validate_model(self) -> dict[str, Any]:
        from mpm.tools import metrics as m
        from mpm.tools.datasets import read_table
        from mpm.tools.evaluation import load_model

        req = self.ctx.requirements
        target = self.ctx.upstream_output("target_column")
        model = load_model(self.ctx.upstream_output("model_path"))
        test = read_table(_path(self.ctx.upstream_output("test_path")))
        metric = str(req["target_metric"]).casefold()
        y_pred, proba, classes = m.predict(
            model, test[list(model.feature_names_in_)], req["model_type"]
        )
        scores = m.all_metrics(req["model_type"], test[target], y_pred, proba, classes)
        score = float(scores[metric])
        meets = m.meets_threshold(score, float(req["success_threshold"]), metric)
        self.publish(
            outputs={
                "meets_threshold": meets,
                "validation_passed": meets,
                "test_score": score,
                "blocking_findings": [],
                "findings": [],
            },
            metrics={f"test_{k}": v for k, v in scores.items()},
        )
        return {"summary": f"test {metric}={score:.4f}; threshold {'met' if meets else 'NOT met'}"}


class Registration(MinimalToolkit):
    required_outputs = ("model_uri", "registered_model_name")
    work = ("register_pipeline_model",)

    def register_pipeline_model(self) -> dict[str, Any]:
        """The real registration tool (gate check, fail-closed refusal, pyfunc logging,
        MLflow registry), pointed at the ``MLFLOW_TRACKING_URI`` store for this call."""
        import os

        from mpm.tools import tracking
        from mpm.tools.errors import ToolConfigError

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            # the run's tracking is off, so synthesis (which loads the registered model to
            # run the generated test suite) finds it only through the process's MLflow store
            raise ToolConfigError(
                "MLFLOW_TRACKING_URI: the minimal toolset registers the model in the MLflow "
                "store it names; set it (e.g. sqlite:///<workspace>/mlflow.db)"
            )
        c = tracking.client(uri)
        experiment = tracking.ensure_experiment(
            c, REGISTRY_EXPERIMENT, self.ctx.workspace_root / "mlartifacts"
        )
        run_id = tracking.find_or_create_run(
            c, experiment, f"{self.ctx.stage_dir}:registration", "minimal_registration"
        )
        real = MLOpsToolkit(
            dataclasses.replace(self.ctx, tracking_uri=uri, run_id=run_id, experiment_id=experiment)
        )
        result = real.register_pipeline_model()
        tracking.finish_run(c, run_id)
        outputs = dict(real.outcome.outputs)
        self.publish(outputs=outputs, evidence=real.outcome.evidence)
        return {"summary": result["summary"]}


class Deployment(MinimalToolkit):
    """Serving and the app answer at once (skipped, as in ``noop``): starting MLflow's
    scoring server is tool work, not orchestration, and nothing is claimed served."""

    required_outputs = ()


MINIMAL_TOOLKITS: dict[str, type[MinimalToolkit]] = {
    "business_analyst": BusinessAnalysis,
    "data_wrangler": DataAcquisition,
    "data_scientist": ExploratoryAnalysis,
    "model_developer": ModelDevelopment,
    "model_validator": ModelValidation,
    "mlops_engineer": Registration,
    "deployment_engineer": Deployment,
}


def _path(value: Any) -> Any:
    from pathlib import Path

    return Path(str(value))


def minimal_agent(spec: AgentSpec) -> AgentSpec:
    """``spec`` with the minimal toolkit: same persona, procedures and tool names."""
    names = tuple(dict.fromkeys(t for t, _ in spec.procedure + spec.fallback_procedure))
    base = MINIMAL_TOOLKITS[spec.name]
    toolkit = type(f"Minimal{spec.toolkit.__name__}", (base,), {"tool_names": names})
    return AgentSpec(spec.name, spec.persona, toolkit, spec.procedure, spec.fallback_procedure)

"""Data wrangler: acquires the data, profiles it, checks its quality, splits it."""

from __future__ import annotations

from typing import Any

from agents.base import AgentFailure, AgentSpec, Toolkit, tool

PERSONA = """You are the data wrangler of a governed ML project. You acquire the data the
requirements name, profile it, run the quality checks whose outcomes become governance
evidence, and split it reproducibly into train, validation and test sets."""


class DataWranglerToolkit(Toolkit):
    required_outputs = ("train_path", "val_path", "test_path", "target_column")

    @tool
    def acquire_data(self, source_name: str | None = None) -> dict[str, Any]:
        """Acquire the data source named in the requirements (the first one by default)."""
        from tools.datasets import acquire_dataset

        sources = self.ctx.requirements["data_sources"]
        source = (
            next((s for s in sources if s["name"] == source_name), sources[0])
            if source_name
            else sources[0]
        )
        info = acquire_dataset(
            source["uri"],
            str(self.ctx.stage_dir),
            target_column=self.ctx.requirements.get("target_column"),
            rows=source.get("rows"),
            seed=self.ctx.seed,
            base_dir=str(self.ctx.workspace_root),
        )
        self.publish(
            outputs={
                "raw_path": info["path"],
                "target_column": info["target_column"],
                "feature_columns": info["feature_columns"],
                "source": source["name"],
            },
            metrics={
                "n_rows": info["rows"],
                "n_columns": info["columns"]
                if isinstance(info["columns"], int)
                else len(info["columns"]),
            },
            evidence={"data_source_uri": source["uri"]},
        )
        return {
            "summary": f"acquired {info['rows']} rows from {source['uri']}",
            **{k: info[k] for k in ("path", "rows", "target_column")},
        }

    @tool
    def profile_data(self) -> dict[str, Any]:
        """Profile the acquired data: types, missing values, duplicates, class balance, leakage hints."""
        from tools.data_quality import profile_dataset

        profile = profile_dataset(
            self._raw(),
            self.outcome.outputs["target_column"],
            self.ctx.requirements["model_type"],
            out_dir=str(self.ctx.stage_dir),
        )
        self.record_file(profile["profile_path"])
        self.publish(outputs={"profile_path": profile["profile_path"]})
        self._profile = profile
        return {
            "summary": f"profiled {profile.get('rows')} rows x {profile.get('n_columns', profile.get('columns'))} columns",
            "leakage_hints": profile.get("leakage_hints", []),
        }

    @tool
    def check_quality(self) -> dict[str, Any]:
        """Run the data quality checks; their outcomes are governance evidence."""
        from tools.data_quality import quality_checks

        profile = getattr(self, "_profile", None)
        if profile is None:
            raise AgentFailure("check_quality needs profile_data to run first")
        checks = quality_checks(profile, self.ctx.requirements["model_type"])
        passed = bool(checks["data_quality_passed"])
        self.publish(
            outputs={"quality_checks": {k: v for k, v in checks.items() if isinstance(v, dict)}},
            metrics={
                "data_quality_score": checks["data_quality_score"],
                "missing_rate": profile.get("missing_rate", 0.0),
            },
            evidence={
                "data_quality_passed": "Yes" if passed else "No",
                "data_quality_score": checks["data_quality_score"],
            },
        )
        failed = [k for k, v in checks.items() if isinstance(v, dict) and not v.get("passed", True)]
        return {
            "summary": f"quality {'passed' if passed else 'FAILED'} (score {checks['data_quality_score']:.2f})"
            + (f"; failed: {', '.join(failed)}" if failed else "")
        }

    @tool
    def split_data(self) -> dict[str, Any]:
        """Split the data reproducibly into train / validation / test sets."""
        from tools.datasets import split_dataset

        split = split_dataset(
            self._raw(),
            self.outcome.outputs["target_column"],
            str(self.ctx.stage_dir),
            seed=self.ctx.seed,
            model_type=self.ctx.requirements["model_type"],
        )
        self.publish(
            outputs={
                "train_path": split["train_path"],
                "val_path": split["val_path"],
                "test_path": split["test_path"],
            },
            metrics={k: v for k, v in split.items() if k.endswith("_rows")},
        )
        return {
            "summary": "split into "
            + ", ".join(f"{k}={v}" for k, v in split.items() if k.endswith("_rows"))
        }

    def _raw(self) -> str:
        raw = self.outcome.outputs.get("raw_path")
        if raw is None:
            raise AgentFailure("acquire_data must run first")
        return raw


SPEC = AgentSpec(
    name="data_wrangler",
    persona=PERSONA,
    toolkit=DataWranglerToolkit,
    procedure=(
        ("acquire_data", {}),
        ("profile_data", {}),
        ("check_quality", {}),
        ("split_data", {}),
    ),
)

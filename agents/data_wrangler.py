"""Data wrangler: acquires the data, profiles it, checks its quality, splits it."""

from __future__ import annotations

from typing import Any

from mpm.agents import evidence
from mpm.agents.base import AgentFailure, AgentSpec, Toolkit, tool

PERSONA = """You are the data wrangler of a governed ML project. You acquire the data the
requirements name, profile it, run the quality checks whose outcomes become governance
evidence, and split it reproducibly into train, validation and test sets."""


class DataWranglerToolkit(Toolkit):
    required_outputs = ("train_path", "val_path", "test_path", "target_column")

    @tool
    def acquire_data(self, source_name: str | None = None) -> dict[str, Any]:
        """Acquire the data source named in the requirements (the first one by default)."""
        from mpm.tools.datasets import acquire_dataset

        sources = self.ctx.requirements["data_sources"]
        source = (
            next((s for s in sources if s["name"] == source_name), sources[0])
            if source_name
            else sources[0]
        )
        extracted_on = evidence.today()
        info = acquire_dataset(
            source["uri"],
            str(self.ctx.stage_dir),
            target_column=self.ctx.requirements.get("target_column"),
            rows=source.get("rows"),
            seed=self.ctx.seed,
            base_dir=str(self.ctx.workspace_root),
        )
        self._lineage = evidence.data_lineage(
            source,
            info,
            seed=self.ctx.seed,
            extracted_on=extracted_on,
            sha256=_sha256(info["path"]),
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
            evidence={
                "data_source_uri": source["uri"],
                "data_lineage": self._lineage,
                "extract_date": extracted_on,
            },
        )
        return {
            "summary": f"acquired {info['rows']} rows from {source['uri']}",
            **{k: info[k] for k in ("path", "rows", "target_column")},
        }

    @tool
    def profile_data(self) -> dict[str, Any]:
        """Profile the acquired data: types, missing values, duplicates, class balance, leakage hints."""
        from mpm.tools.data_quality import profile_dataset

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
        from mpm.tools.data_quality import quality_checks

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
                "data_quality_passed": passed,
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
        from mpm.tools.datasets import split_dataset

        split = split_dataset(
            self._raw(),
            self.outcome.outputs["target_column"],
            str(self.ctx.stage_dir),
            seed=self.ctx.seed,
            model_type=self.ctx.requirements["model_type"],
        )
        split_info = {
            k: split.get(k)
            for k in (
                "train_rows",
                "val_rows",
                "test_rows",
                "stratified",
                "seed",
                "dropped_missing_target",
            )
        }
        lineage = getattr(self, "_lineage", None)
        self.publish(
            outputs={
                "train_path": split["train_path"],
                "val_path": split["val_path"],
                "test_path": split["test_path"],
                "split_info": split_info,
            },
            metrics={k: v for k, v in split.items() if k.endswith("_rows")},
            evidence={"data_lineage": f"{lineage} {evidence.split_lineage(split_info)}"}
            if lineage
            else None,
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


def _sha256(path: str) -> str:
    """Fingerprint of the extract, so a reviewer can tell it is the data that was used."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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

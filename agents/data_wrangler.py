"""Data wrangler: acquires the data, profiles it, checks its quality, splits it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpm.agents import evidence
from mpm.agents.base import AgentFailure, AgentSpec, Toolkit, tool

PERSONA = """You are the data wrangler of a governed ML project. You acquire the data the
requirements name, profile it, run the quality checks whose outcomes become governance
evidence, and split it reproducibly into train, validation and test sets."""

PREPARED_FILE = "prepared.parquet"


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
            # stage folders are runs/<thread>/<stage>: another thread's run folder is refused
            thread_id=Path(self.ctx.stage_dir).parent.name,
        )
        self._lineage = evidence.data_lineage(
            source,
            info,
            seed=self.ctx.seed,
            extracted_on=extracted_on,
            sha256=_sha256(info["path"]),
        )
        path, prepared = self._prepare(info["path"], info["target_column"])
        self.publish(
            outputs={
                "raw_path": path,
                "excluded_columns": prepared["excluded_columns"],
                "remediations": prepared["remediations"],
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
        done = [r["detail"] for r in prepared["remediations"]]
        if prepared["excluded_columns"]:
            done.insert(0, f"excluded {', '.join(prepared['excluded_columns'])}")
        return {
            "summary": f"acquired {info['rows']} rows from {source['uri']}"
            + (f"; {'; '.join(done)}" if done else ""),
            **{k: info[k] for k in ("rows", "target_column")},
            "path": path,
        }

    def _prepare(self, path: str, target: str) -> tuple[str, dict[str, Any]]:
        """The requirements' ``exclude_columns`` dropped and their ``data_remediation``
        applied, each recorded; the extract itself is kept as acquired."""
        from mpm.tools.data_quality import remediate
        from mpm.tools.datasets import read_table

        req = self.ctx.requirements
        exclude = list(req.get("exclude_columns") or [])
        actions = list(req.get("data_remediation") or [])
        prepared: dict[str, Any] = {"excluded_columns": [], "remediations": []}
        if not exclude and not actions:
            return path, prepared
        if target in exclude:
            raise AgentFailure(f"exclude_columns: may not name the target column {target!r}")
        df = read_table(Path(path))
        unknown = [c for c in exclude if c not in df.columns]
        if unknown:
            raise AgentFailure(
                f"exclude_columns: {', '.join(map(repr, unknown))} not in the data; "
                f"columns: {', '.join(map(str, df.columns))}"
            )
        df = df.drop(columns=exclude)
        df, records = remediate(df, target, actions)
        out = Path(self.ctx.stage_dir) / PREPARED_FILE
        df.to_parquet(out, index=False)
        prepared.update(excluded_columns=exclude, remediations=records)
        return str(out), prepared

    @tool
    def profile_data(self) -> dict[str, Any]:
        """Profile the acquired data: types, missing values, duplicates, class balance, leakage hints."""
        from mpm.tools.data_quality import profile_dataset

        req = self.ctx.requirements
        profile = profile_dataset(
            self._raw(),
            self.outcome.outputs["target_column"],
            req["model_type"],
            out_dir=str(self.ctx.stage_dir),
            # split columns are never model inputs (training drops them)
            exclude=[c for c in (req.get("group_column"), req.get("time_column")) if c],
        )
        self.record_file(profile["profile_path"])
        self.publish(outputs={"profile_path": profile["profile_path"]})
        self._profile = profile
        return {
            "summary": f"profiled {profile.get('rows')} rows x {profile.get('n_columns', profile.get('columns'))} columns",
            "leakage_hints": profile.get("leakage_hints", []),
            "leakage_findings": [
                {k: f[k] for k in ("id", "severity", "reason")}
                for f in profile.get("leakage_findings") or []
            ],
        }

    @tool
    def check_quality(self) -> dict[str, Any]:
        """Run the data quality checks; their outcomes are governance evidence."""
        from mpm.tools.data_quality import quality_checks

        profile = getattr(self, "_profile", None)
        if profile is None:
            raise AgentFailure("check_quality needs profile_data to run first")
        checks = quality_checks(
            profile,
            self.ctx.requirements["model_type"],
            thresholds=self.ctx.requirements.get("quality_thresholds") or None,
        )
        result = self._publish_quality(checks, profile)
        split = getattr(self, "_split", None)
        if split is not None:  # split first (a model may choose that order): gate it now
            result["summary"] += f"; {self._overlap_gate(split)}"
        return result

    def _publish_quality(self, checks: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
        """Checks, failed gates and the findings the validator rules on (failed gates and
        data-time leakage, each with a stable id), with the remediations applied."""
        from mpm.tools.data_quality import gate_findings

        self._checks = checks
        passed = bool(checks["data_quality_passed"])
        remediations = self.outcome.outputs.get("remediations") or []
        report = {
            "checks": {k: v for k, v in checks.items() if isinstance(v, dict)},
            "failed_gates": checks["failed_gates"],
            "remediations": remediations,
            "excluded_columns": self.outcome.outputs.get("excluded_columns") or [],
            "ignored_loosening": checks.get("ignored_loosening") or [],
        }
        path = Path(self.ctx.stage_dir) / "quality_report.json"
        path.write_text(json.dumps(report, indent=2, default=str, sort_keys=True))
        self.record_file(path)
        findings = gate_findings(checks) + list(profile.get("leakage_findings") or [])
        self.publish(
            outputs={
                "quality_checks": report["checks"],
                "failed_quality_gates": checks["failed_gates"],
                "data_findings": findings,
                "quality_report_path": str(path),
            },
            metrics={
                "data_quality_score": checks["data_quality_score"],
                "missing_rate": profile.get("missing_rate", 0.0),
                "n_failed_quality_gates": len(checks["failed_gates"]),
            },
            evidence={
                "data_quality_passed": passed,
                "data_quality_score": checks["data_quality_score"],
            },
        )
        failed = checks["failed_checks"]
        return {
            "summary": f"quality {'passed' if passed else 'FAILED'} (score {checks['data_quality_score']:.2f})"
            + (f"; failed: {', '.join(failed)}" if failed else "")
            + (
                f"; failed gates block validation: {', '.join(checks['failed_gates'])}"
                if checks["failed_gates"]
                else ""
            )
            + (
                "; remediated: " + "; ".join(r["detail"] for r in remediations)
                if remediations
                else ""
            )
        }

    @tool
    def split_data(self) -> dict[str, Any]:
        """Split the data reproducibly into train / validation / test sets."""
        from mpm.tools.datasets import split_dataset

        req = self.ctx.requirements
        split = split_dataset(
            self._raw(),
            self.outcome.outputs["target_column"],
            str(self.ctx.stage_dir),
            seed=self.ctx.seed,
            model_type=req["model_type"],
            group_column=req.get("group_column"),
            time_column=req.get("time_column"),
        )
        split_info = {
            k: split.get(k)
            for k in (
                "train_rows",
                "val_rows",
                "test_rows",
                "stratified",
                "split_kind",
                "group_column",
                "time_column",
                "seed",
                "dropped_missing_target",
            )
        }
        self._split = split
        quality = self._overlap_gate(split)
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
            + (f"; {quality}" if quality else "")
        }

    def _overlap_gate(self, split: dict[str, Any]) -> str:
        """Add the train/test overlap gate to the quality checks (it needs the split)."""
        from mpm.tools.data_quality import effective_thresholds, summarise, train_test_overlap
        from mpm.tools.datasets import read_table

        checks = getattr(self, "_checks", None)
        profile = getattr(self, "_profile", None)
        if checks is None or profile is None:
            return ""
        limits, _ = effective_thresholds(self.ctx.requirements.get("quality_thresholds"))
        parts = [read_table(Path(split[f"{n}_path"])) for n in ("train", "val", "test")]
        overlap = train_test_overlap(*parts, threshold=limits["max_train_test_overlap"])
        named = {k: v for k, v in checks.items() if isinstance(v, dict) and "passed" in v}
        named["train_test_overlap"] = overlap
        loosened = {e["threshold"]: e for e in checks.get("ignored_loosening") or []}
        self._publish_quality(summarise(named, loosened=loosened), profile)
        return f"train/test overlap {'ok' if overlap['passed'] else 'FAILED'}: {overlap['detail']}"

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

"""A directory of policies plus its Approvers.md, keyed by framework id.

Why: mpm decides per project which frameworks apply (``nist_rmf``, ``model_intake``...),
so it needs each policy under a stable framework id, and it must know before any run
whether every approver a policy names can actually be verified against Approvers.md.

Framework ids come from, in order: an optional ``frameworks.yaml`` in the directory
(``frameworks: {<id>: {file: <name>, title: <title>}}``; other keys per entry are kept in
:attr:`FrameworkEntry.model_extra`), the file names the seed used for the published
examples (``Example NIST RMF.yml`` -> ``nist_rmf``...), else a slug of the file stem.
``frameworks.yaml`` only renames (and, with ``exclude: [file, ...]``, leaves files out): a
policy file it does not list still loads, under its default id, with a warning -- a newly
dropped policy is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mpm.governance.approvers import APPROVERS_FILE, ApproverDirectory, ApproversFileError
from mpm.governance.loader import (
    LoadedPolicy,
    PolicyError,
    PolicyIssue,
    framework_id_for,
    load_policy,
    read_yaml,
    yaml_path,
)

INDEX_FILE = "frameworks.yaml"
POLICY_SUFFIXES = (".yml", ".yaml")
#: The optional configuration files that sit beside the policies (never policies).
CONFIG_FILE_NAMES = frozenset(
    {INDEX_FILE, "applicability.yaml", "evidence_map.yaml", "workflow.yaml"}
)


class FrameworkEntry(BaseModel):
    """One framework in ``frameworks.yaml``: which file defines it and what to call it."""

    model_config = ConfigDict(extra="allow")

    file: str = Field(min_length=1)
    title: str | None = None


class FrameworkIndex(BaseModel):
    model_config = ConfigDict(extra="allow")

    frameworks: dict[str, FrameworkEntry] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list, description="policy files to leave out")


class PolicyLibraryError(PolicyError):
    """Raised by a strict load when any policy (or the index) in the directory fails."""

    def __init__(self, directory: Path, errors: list[PolicyError]) -> None:
        self.errors = errors
        super().__init__(directory, [PolicyIssue("", str(e)) for e in errors])


@dataclass(frozen=True)
class UnknownApprover:
    """An approver a policy names that Approvers.md knows neither as group nor as member."""

    framework: str
    policy: str  # the policy file name
    stage: str | None  # None for the policy's top-level ``approvers``
    approval: str | None
    name: str
    path: str  # YAML path of the approver inside the policy
    suggestion: str | None = None  # the closest known group, if any


@dataclass
class PolicyLibrary:
    """Every policy in a directory, by framework id, with the approver directory."""

    directory: Path
    policies: dict[str, LoadedPolicy] = field(default_factory=dict)
    approvers: ApproverDirectory = field(default_factory=ApproverDirectory)
    index: dict[str, FrameworkEntry] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    errors: list[PolicyError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, directory: str | Path, *, strict: bool = True) -> PolicyLibrary:
        """Load every ``*.yml``/``*.yaml`` policy and ``Approvers.md`` of ``directory``.

        strict: raise :class:`PolicyLibraryError` if any file fails; otherwise keep the
        good policies and record the failures in :attr:`errors`.
        """
        directory = Path(directory)
        library = cls(directory=directory)
        if not directory.is_dir():
            error = PolicyError(directory, [PolicyIssue("", "not a directory")])
            if strict:
                raise PolicyLibraryError(directory, [error])
            library.errors.append(error)
            return library
        library._load_index()
        library._load_policies()
        library._load_approvers()
        library._report_unknown_approvers()
        if strict and library.errors:
            raise PolicyLibraryError(directory, library.errors)
        return library

    # ----- loading steps

    def _load_index(self) -> None:
        path = self.directory / INDEX_FILE
        if not path.is_file():
            return
        try:
            raw = read_yaml(path.read_bytes(), source=path)
            parsed = FrameworkIndex.model_validate(raw)
            self.index, self.excluded = parsed.frameworks, list(parsed.exclude)
        except PolicyError as exc:
            self.errors.append(exc)
        except ValidationError as exc:
            issues = [
                PolicyIssue(yaml_path(tuple(e["loc"]), raw), e["msg"])
                for e in exc.errors(include_url=False)
            ]
            self.errors.append(PolicyError(path, issues))

    def _load_policies(self) -> None:
        by_file = {entry.file: (fid, entry) for fid, entry in self.index.items()}
        for fid, entry in self.index.items():
            if not (self.directory / entry.file).is_file():
                self.errors.append(
                    PolicyError(
                        self.directory / INDEX_FILE,
                        [
                            PolicyIssue(
                                f"frameworks.{fid}.file",
                                f"{entry.file!r} is not a file in {self.directory}",
                            )
                        ],
                    )
                )
        files = sorted(
            p
            for p in self.directory.iterdir()
            if p.is_file() and p.suffix.lower() in POLICY_SUFFIXES
        )
        for path in files:
            if path.name in by_file:
                fid, entry = by_file[path.name]
                title = entry.title
            elif path.name in CONFIG_FILE_NAMES or path.name in self.excluded:
                continue  # configuration beside the policies, or excluded on purpose
            elif self.index:
                # frameworks.yaml only renames or excludes: an unlisted policy still governs.
                fid, title = framework_id_for(path), None
                self.warnings.append(
                    f"{path.name}: not listed in {INDEX_FILE}; loaded as framework {fid!r} "
                    f"(list it there to rename it, or under 'exclude' to leave it out)"
                )
            else:
                fid, title = framework_id_for(path), None
            if fid in self.policies:
                self.errors.append(
                    PolicyError(
                        path,
                        [
                            PolicyIssue(
                                "",
                                f"framework id {fid!r} is already used by {self.policies[fid].source.name}; "
                                f"list both in {INDEX_FILE} with distinct ids",
                            )
                        ],
                    )
                )
                continue
            try:
                self.policies[fid] = load_policy(path, framework=fid, title=title)
            except PolicyError as exc:
                self.errors.append(exc)

    def _load_approvers(self) -> None:
        path = self.directory / APPROVERS_FILE
        if not path.is_file():
            self.warnings.append(f"{path}: no {APPROVERS_FILE}; no approver can be verified")
            return
        try:
            self.approvers = ApproverDirectory.load(path)
        except ApproversFileError as exc:
            self.errors.append(PolicyError(path, [PolicyIssue("", str(exc).split(": ", 1)[-1])]))
            return
        self.warnings.extend(self.approvers.warnings)

    def _report_unknown_approvers(self) -> None:
        """One warning per policy and unknown name, listing every place it is named."""
        if self.approvers.source is None:
            return  # the missing Approvers.md was already reported once
        grouped: dict[tuple[str, str], list[UnknownApprover]] = {}
        for unknown in self.unknown_approvers():
            grouped.setdefault((unknown.policy, unknown.name), []).append(unknown)
        for (policy, name), places in grouped.items():
            kind = "looks like an individual user id" if "_" in name else "unknown name"
            hint = f"; did you mean {places[0].suggestion!r}?" if places[0].suggestion else ""
            paths = ", ".join(p.path for p in places)
            self.warnings.append(
                f"{policy}: {paths}: approver {name!r} ({kind}) is neither a group in "
                f"{APPROVERS_FILE} nor a member of one, so nobody can be verified as this "
                f"approver{hint}"
            )

    # ----- questions

    @property
    def frameworks(self) -> list[str]:
        return list(self.policies)

    def get(self, framework: str) -> LoadedPolicy:
        if framework not in self.policies:
            raise KeyError(f"no policy for framework {framework!r}; known: {sorted(self.policies)}")
        return self.policies[framework]

    def title(self, framework: str) -> str:
        return self.get(framework).title

    def all_warnings(self) -> list[str]:
        """Library warnings followed by every policy's own warnings, each on one line."""
        lines = list(self.warnings)
        for loaded in self.policies.values():
            lines.extend(f"{loaded.source.name}: {w}" for w in loaded.warnings)
        return lines

    def framework_info(self, framework: str) -> dict[str, Any]:
        """The index entry (file, title and any extra keys) of a framework, or {}."""
        entry = self.index.get(framework)
        return entry.model_dump() if entry else {}

    def unknown_approvers(self) -> list[UnknownApprover]:
        """Approvers named by policies that Approvers.md does not know."""
        found: list[UnknownApprover] = []
        for fid, loaded in self.policies.items():
            policy = loaded.policy
            for k, approver in enumerate(policy.approvers):
                if not self.approvers.is_known(approver.name):
                    found.append(
                        UnknownApprover(
                            fid,
                            loaded.source.name,
                            None,
                            None,
                            approver.name,
                            f"approvers[{k}]",
                            self.approvers.suggest(approver.name),
                        )
                    )
            for i, stage in enumerate(policy.stages):
                for j, approval in enumerate(stage.approvals):
                    for k, approver in enumerate(approval.approvers):
                        if not self.approvers.is_known(approver.name):
                            found.append(
                                UnknownApprover(
                                    fid,
                                    loaded.source.name,
                                    stage.name,
                                    approval.name,
                                    approver.name,
                                    f"stages[{i}].approvals[{j}].approvers[{k}]",
                                    self.approvers.suggest(approver.name),
                                )
                            )
        return found

    def __iter__(self) -> Iterator[LoadedPolicy]:
        return iter(self.policies.values())

    def __len__(self) -> int:
        return len(self.policies)

    def __contains__(self, framework: object) -> bool:
        return framework in self.policies

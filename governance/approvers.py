"""Approvers.md: who may act for which approver group.

Why a directory: a policy's approval names groups (``model-gov-org``) or single users
(``andrea_lowe``); mpm must decide whether a person resuming an approval is allowed to.

File syntax (Markdown, human-editable; the published Domino example parses unchanged)::

    # Approval Organizations          <- title and prose anywhere are ignored
    ## Modeling                       <- a section (an organisation area)
    The team that builds models.      <- section description (kept)
    - modeling-review                 <- a group: a top-level bullet
      - member: mr-reviewer-1         <- a member id: a nested bullet "member: <id>"
      - mr-reviewer-2                 <- a bare nested bullet is a member id too
    - modeling-leadership             <- a group without members (allowed)

Group and member ids are single words (letters, digits, ``- _ . @``); backticks are
stripped. Anything else in a bullet is reported as a warning, never guessed at.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from mpm.governance.identity import UnsafeIdError, canonical_id

APPROVERS_FILE = "Approvers.md"
"""The approver directory of a policy directory (Domino's name for it)."""

if TYPE_CHECKING:
    from mpm.governance.identity import IdentityDirectory

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]*")
_MEMBER_PREFIX = re.compile(r"^members?\s*:\s*", re.IGNORECASE)


class ApproversFileError(ValueError):
    """Approvers.md cannot be read at all (missing, not UTF-8). Content issues are warnings."""


@dataclass(frozen=True)
class ApproverGroup:
    name: str
    section: str
    members: tuple[str, ...] = ()
    line: int = 0


@dataclass
class ApproverDirectory:
    """The approver groups of a policy library and the user ids that belong to each."""

    groups: dict[str, ApproverGroup] = field(default_factory=dict)
    sections: dict[str, list[str]] = field(default_factory=dict)
    section_descriptions: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: Path | None = None
    signers: frozenset[str] = frozenset()
    """Member ids with a key in the identity directory (see :meth:`merged`)."""

    # ----- reading

    @classmethod
    def load(cls, path: str | Path) -> ApproverDirectory:
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise ApproversFileError(f"{path}: no such file") from None
        except UnicodeDecodeError as exc:
            raise ApproversFileError(
                f"{path}: not UTF-8 text (byte offset {exc.start}); save the file as UTF-8"
            ) from None
        except OSError as exc:
            raise ApproversFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
        return cls.parse(text, source=path)

    @classmethod
    def parse(cls, text: str, source: str | Path | None = None) -> ApproverDirectory:
        from markdown_it import MarkdownIt

        directory = cls(source=Path(source) if source is not None else None)
        tokens = MarkdownIt("commonmark").parse(text)
        section = ""
        depth = 0  # bullet-list nesting depth
        current_group: str | None = None
        pending_heading: int | None = None
        in_paragraph_after_heading = False
        for i, token in enumerate(tokens):
            line = (token.map[0] + 1) if token.map else 0
            if token.type == "heading_open":
                pending_heading = int(token.tag[1])
            elif token.type == "inline" and pending_heading is not None:
                if pending_heading >= 2:
                    section = token.content.strip()
                    directory.sections.setdefault(section, [])
                    in_paragraph_after_heading = True
                pending_heading = None
                current_group = None
            elif token.type == "bullet_list_open":
                depth += 1
                in_paragraph_after_heading = False
            elif token.type == "bullet_list_close":
                depth -= 1
            elif token.type == "inline" and depth == 0 and in_paragraph_after_heading:
                if tokens[i - 1].type == "paragraph_open" and section:
                    directory.section_descriptions.setdefault(section, token.content.strip())
            elif token.type == "inline" and depth >= 1:
                item = _first_line(token.content)
                if depth == 1:
                    current_group = directory._add_group(item, section, line)
                elif depth == 2 and current_group is not None:
                    directory._add_member(current_group, item, line)
                else:
                    directory._warn(line, f"bullet {item!r} is nested too deeply; ignored")
        directory._check_typos()
        return directory

    def _warn(self, line: int, message: str) -> None:
        where = f"{self.source.name}:{line}" if self.source else f"line {line}"
        self.warnings.append(f"{where}: {message}")

    def _add_group(self, item: str, section: str, line: int) -> str | None:
        name = item.strip("`").strip()
        if not _ID.fullmatch(name):
            self._warn(
                line,
                f"bullet {item!r} is not a group id (one word such as 'legal-review'); ignored",
            )
            return None
        if name in self.groups:
            self._warn(
                line,
                f"group {name!r} is listed again (first at line {self.groups[name].line}); members merged",
            )
            return name
        self.groups[name] = ApproverGroup(name=name, section=section, line=line)
        self.sections.setdefault(section, []).append(name)
        return name

    def _add_member(self, group: str, item: str, line: int) -> None:
        member = _MEMBER_PREFIX.sub("", item).strip("`").strip()
        if not _ID.fullmatch(member):
            self._warn(line, f"member {item!r} of group {group!r} is not a user id; ignored")
            return
        existing = self.groups[group]
        if member not in existing.members:
            self.groups[group] = ApproverGroup(
                existing.name, existing.section, (*existing.members, member), existing.line
            )

    def _check_typos(self) -> None:
        """Flag a group whose suffix is a near miss of a suffix other sections share."""
        suffixes: dict[str, int] = {}
        for name in self.groups:
            if "-" in name:
                suffix = name.rsplit("-", 1)[1]
                suffixes[suffix] = suffixes.get(suffix, 0) + 1
        for name, group in self.groups.items():
            if "-" not in name:
                continue
            prefix, suffix = name.rsplit("-", 1)
            if suffixes[suffix] > 1:
                continue
            common = [s for s, count in suffixes.items() if count > 1 and s != suffix]
            close = difflib.get_close_matches(suffix, common, n=1, cutoff=0.75)
            if close:
                self._warn(
                    group.line,
                    f"group {name!r} looks like a typo of '{prefix}-{close[0]}' (other sections use "
                    f"'-{close[0]}'); a policy naming '{prefix}-{close[0]}' will not match it",
                )

    # ----- the identity directory

    def merged(self, identity: IdentityDirectory) -> ApproverDirectory:
        """This directory plus the identity directory's ``members.yaml`` memberships and
        signers: Domino's own Approvers.md lists groups only, their members live there."""
        groups = dict(self.groups)
        for name, members in identity.groups.items():
            key = next((g for g in groups if _canon(g) == name), name)
            existing = groups.get(key) or ApproverGroup(name=key, section="(identity directory)")
            extra = tuple(
                m for m in sorted(members) if m not in {_canon(x) for x in existing.members}
            )
            groups[key] = ApproverGroup(
                existing.name, existing.section, (*existing.members, *extra), existing.line
            )
        return ApproverDirectory(
            groups=groups,
            sections=self.sections,
            section_descriptions=self.section_descriptions,
            warnings=self.warnings,
            source=self.source,
            signers=frozenset(identity.keys),
        )

    # ----- questions (ids compared in canonical form: NFKC, casefold, trimmed)

    def _group(self, name: str) -> ApproverGroup | None:
        if name in self.groups:
            return self.groups[name]
        wanted = _canon(name)
        return next((g for g in self.groups.values() if _canon(g.name) == wanted), None)

    def is_group(self, name: str) -> bool:
        return self._group(name) is not None

    def members_of(self, group: str) -> frozenset[str]:
        found = self._group(group)
        if found is None:
            raise KeyError(f"no approver group {group!r}; known groups: {sorted(self.groups)}")
        return frozenset(found.members)

    def groups_of(self, user: str) -> list[str]:
        return [g.name for g in self.groups.values() if self.is_member(user, g.name)]

    def is_member(self, user: str, group: str) -> bool:
        found = self._group(group)
        if found is None:
            return False
        try:
            wanted = canonical_id(user)
        except UnsafeIdError:
            return False
        return any(_canon(m) == wanted for m in found.members)

    @property
    def known_users(self) -> frozenset[str]:
        return frozenset(m for g in self.groups.values() for m in g.members) | self.signers

    def is_known(self, name: str) -> bool:
        """A group or a member id this directory knows."""
        wanted = _canon(name)
        return self.is_group(name) or any(_canon(u) == wanted for u in self.known_users)

    def can_act_as(self, user: str, approver: str) -> bool:
        """Whether ``user`` may approve where a policy names ``approver`` (group or user).

        A group is acted for only by its members: a user id that merely spells the group's
        name is not a member. Both sides are compared canonically; an unsafe id never acts."""
        if self.is_group(approver):
            return self.is_member(user, approver)
        try:
            return canonical_id(user) == canonical_id(approver)
        except UnsafeIdError:
            return False

    def eligible_users(self, approvers: Iterable[str]) -> frozenset[str]:
        """Every user id that may act for at least one of these approver names."""
        users: set[str] = set()
        for name in approvers:
            found = self._group(name)
            users.update(_canon(m) for m in found.members) if found else users.add(_canon(name))
        return frozenset(users)

    def suggest(self, name: str) -> str | None:
        """The closest group name, for 'did you mean' messages."""
        close = difflib.get_close_matches(name, list(self.groups), n=1, cutoff=0.75)
        return close[0] if close else None


@lru_cache(maxsize=4096)
def _canon(name: str) -> str:
    """``canonical_id`` (NFKC, casefold; cached: a pure function of the name, asked for
    every member of every named group on every evaluation), or the name unchanged."""
    try:
        return canonical_id(name)
    except UnsafeIdError:
        return name


def _first_line(content: str) -> str:
    return content.strip().splitlines()[0].strip() if content.strip() else ""

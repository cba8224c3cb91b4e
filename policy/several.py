"""Several experiments at once: one session per experiment, each in its own sub-folder of one
folder, with its own values of one form (e.g. folder ``2026-12-02/``, experiments ``mouse1/``
and ``mouse2/``).

All or none: every experiment is judged first (its sub-folder, its values, the policy at its
scope) and nothing is opened while any of them is wrong; the problems come back per
experiment, so a page shows each next to its field. An open that fails after the check (the
policy changed in between) closes the sessions this call opened before it, so the folder is not
left half-annotated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from policy.forms import FormValidationError
from policy.principal import Credential, Principal
from policy.sessions import SessionError, SessionInvalid, SessionService, normalise_prefix
from policy.store.base import SessionRecord

#: the most experiments one call opens
MAX_EXPERIMENTS = 50


@dataclass(frozen=True)
class Experiment:
    """One experiment as asked for: its sub-folder (below the common folder) and its values."""

    folder: str
    values: Mapping[str, Any]


@dataclass
class ExperimentProblems:
    """What is wrong with one experiment: its sub-folder, its fields, or the whole of it."""

    folder: list[str] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.folder or self.values or self.general)


class SeveralInvalid(SessionError):
    """Nothing was opened: ``folder`` is what is wrong with the common folder, ``experiments``
    what is wrong with each experiment (in order; empty ones are fine)."""

    def __init__(self, folder: list[str], experiments: list[ExperimentProblems]) -> None:
        self.folder = folder
        self.experiments = experiments
        wrong = sum(1 for e in experiments if e)
        parts = [f"folder: {'; '.join(folder)}"] if folder else []
        if wrong:
            parts.append(f"{wrong} of {len(experiments)} experiments have problems")
        super().__init__("; ".join(parts) or "nothing to open")


def scope_of(folder: str, sub_folder: str) -> str:
    """The prefix of one experiment: the sub-folder inside the folder, as it will be saved."""
    return normalise_prefix(folder.rstrip("/") + "/" + sub_folder.strip("/"))


async def open_several(
    sessions: SessionService,
    principal: Principal,
    form: str,
    bucket: str,
    folder: str,
    experiments: Sequence[Experiment],
    ttl: str | timedelta | None = None,
) -> list[tuple[SessionRecord, Credential]]:
    """Open one session per experiment, all or none (see the module docstring)."""
    folder_problems: list[str] = []
    try:
        folder = normalise_prefix(folder)
    except SessionInvalid as exc:
        folder_problems.append(str(exc).removeprefix("prefix: "))
    if not experiments:
        folder_problems.append("add at least one experiment")
    if len(experiments) > MAX_EXPERIMENTS:
        folder_problems.append(f"at most {MAX_EXPERIMENTS} experiments at once")
    problems = [ExperimentProblems() for _ in experiments]
    scopes: list[str] = []
    if not folder_problems:
        seen: dict[str, int] = {}
        for index, (experiment, found) in enumerate(zip(experiments, problems, strict=True)):
            scope = ""
            if not experiment.folder.strip("/").strip():
                found.folder.append("give the experiment a sub-folder, e.g. mouse1")
            else:
                try:
                    scope = scope_of(folder, experiment.folder)
                except SessionInvalid as exc:
                    found.folder.append(str(exc).removeprefix("prefix: "))
                else:
                    if scope in seen:
                        found.folder.append(f"the same sub-folder as experiment {seen[scope] + 1}")
                    seen.setdefault(scope, index)
            scopes.append(scope)
            try:
                await sessions.check_open(
                    principal, form, bucket, scope or folder, experiment.values, ttl
                )
            except FormValidationError as exc:
                found.values = exc.errors
            except SessionError as exc:
                found.general.append(str(exc))
    if folder_problems or any(problems):
        raise SeveralInvalid(folder_problems, problems)
    opened: list[tuple[SessionRecord, Credential]] = []
    try:
        for experiment, scope in zip(experiments, scopes, strict=True):
            opened.append(
                await sessions.open(principal, form, bucket, scope, experiment.values, ttl)
            )
    except (SessionError, FormValidationError):
        for record, _ in opened:
            with contextlib.suppress(SessionError):
                await sessions.close(principal, record.id)
        raise
    return opened

"""What the rules need beyond an event, read in the dispatcher's transaction: a run's task, its
stored result, and its baseline (the run a regression is measured against)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import AuditEvent, HubItem, HubVersion, Run, RunArtifact, RunVersion
from ..store import ObjectStore
from .rules import Baseline, RegressionOptions

RESULT_NAME = "result.json"
_CANDIDATES = 50  # earlier runs looked at for one with the same parameters


class DbFacts:
    """``rules.Facts`` over a session and the object store; each run read once per batch."""

    def __init__(self, session: Session, store: ObjectStore) -> None:
        self.session, self.store = session, store
        self._runs: dict[str, Run | None] = {}
        self._results: dict[str, dict[str, Any] | None] = {}

    def preload(self, run_ids: list[str]) -> None:
        """Read the runs of a batch's events in one query rather than one each."""
        wanted = list({r for r in run_ids if r not in self._runs})
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            found = {run.id: run for run in self.session.scalars(select(Run).where(Run.id.in_(chunk)))}
            for run_id in chunk:
                self._runs[run_id] = found.get(run_id)

    def _run(self, run_id: str) -> Run | None:
        if run_id not in self._runs:
            self._runs[run_id] = self.session.get(Run, run_id)
        return self._runs[run_id]

    def task(self, run_id: str) -> str:
        run = self._run(run_id)
        return run.task if run is not None else "?"

    def result(self, run_id: str) -> dict[str, Any] | None:
        if run_id not in self._results:
            digest = self.session.scalar(select(RunArtifact.digest).where(RunArtifact.run_id == run_id,
                                                                          RunArtifact.name == RESULT_NAME))
            parsed: Any = json.loads(self.store.get(digest)) if digest else None
            self._results[run_id] = parsed if isinstance(parsed, dict) else None
        return self._results[run_id]

    def baseline(self, run_id: str, options: RegressionOptions) -> Baseline | None:
        run = self._run(run_id)
        if run is None:
            return None
        uses = self.session.execute(
            select(RunVersion.role, HubVersion, HubItem).join(HubVersion, HubVersion.id == RunVersion.version_id)
            .join(HubItem, HubItem.id == HubVersion.item_id)
            .where(RunVersion.run_id == run_id, HubItem.kind == "model")).all()
        for role, version, item in uses:
            base_versions = self._base_versions(item, version, options.baseline)
            for base_version in base_versions:
                found = self._run_on(run, role, base_version)
                if found is not None:
                    result = self.result(found.id)
                    if result is not None:
                        label = f"{item.name}@{base_version.semver or base_version.digest[:19]}"
                        return Baseline(found.id, label, result)
        return None

    def _base_versions(self, item: HubItem, version: HubVersion, mode: str) -> list[HubVersion]:
        if mode == "previous-version":
            return list(self.session.scalars(
                select(HubVersion).where(HubVersion.item_id == item.id, HubVersion.created_at < version.created_at)
                .order_by(HubVersion.created_at.desc()).limit(5)))
        alias = mode.removeprefix("alias:")
        # The newest move of the alias onto this version; its ``before`` is where it pointed until then.
        moves = self.session.scalars(
            select(AuditEvent.body).where(AuditEvent.action == "hub.alias.moved",
                                          AuditEvent.target_id == f"{item.name}@{alias}")
            .order_by(AuditEvent.seq.desc()).limit(20))
        for body in moves:
            doc = json.loads(body)
            if (doc.get("after") or {}).get("version_id") == version.id:
                before = (doc.get("before") or {}).get("version_id")
                found = self.session.get(HubVersion, before) if before else None
                return [found] if found is not None else []
        return []

    def _run_on(self, run: Run, role: str, version: HubVersion) -> Run | None:
        """The newest succeeded run of the same task and parameters, in the same project, on ``version``."""
        candidates = self.session.scalars(
            select(Run).join(RunVersion, RunVersion.run_id == Run.id)
            .where(RunVersion.version_id == version.id, RunVersion.role == role, Run.project_id == run.project_id,
                   Run.task == run.task, Run.status == "succeeded", Run.id != run.id)
            .order_by(Run.finished_at.desc()).limit(_CANDIDATES))
        for candidate in candidates:
            if candidate.params == run.params and candidate.patch == run.patch:
                return candidate
        return None

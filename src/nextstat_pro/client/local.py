"""``LocalClient``: the ``Client`` of an instance on this machine, calling the service operations
in-process with the authenticated caller's ``RequestContext`` (what the CLI's commands did
before there was a server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..access.context import RequestContext
from ..audit import service as audit
from ..audit.export import export_bundle
from ..audit.records import EventFilter
from ..audit.views import (
    AuditEventRow,
    AuditExportSummary,
    AuditVerifyReport,
    CheckpointRow,
    ConsistencyProof,
    InclusionProof,
)
from ..config import InstanceConfig
from ..config_service import set_config, show_config
from ..errors import AuthenticationError
from ..hub import imports, likelihood, retention
from ..hub import service as hub
from ..hub.views import ImportReport, LikelihoodImport, ModelDiff, Pushed, VersionDetail, VersionDoc
from ..identity import auth, resets, users
from ..identity.auth import Credential
from ..identity.views import (
    ResetApproved,
    ResetCompleted,
    ResetRequested,
    RoleBindingRow,
    TokenRow,
    UserRow,
    WhoAmI,
)
from ..instance import Instance
from ..projects import service as projects
from ..projects.views import ProjectRow
from ..runs import export_folder, list_run_rows, run_artifacts, run_result, run_task, show_run
from ..runs.esignatures import SignResult, sign_run
from ..runs.listing import RunFilter
from ..runs.service import RunRequest
from ..runs.views import ArtifactRow, RunDetail, RunExport, RunOutcome, RunRow
from ..scale import coordinator
from ..scale import service as jobs
from ..scale.service import SubmitRequest
from ..scale.views import JobProgress, JobStatus, JobSummary
from .base import CoordinatorStarted


class LocalClient:
    """The service operations over ``instance`` as ``ctx`` (None for the operations that make a
    caller: sign-in and a reset's completion)."""

    where = "local"

    def __init__(self, instance: Instance, ctx: RequestContext | None) -> None:
        self.instance = instance
        self._ctx = ctx

    @property
    def ctx(self) -> RequestContext:
        if self._ctx is None:  # a command asked for an unauthenticated client and then used it as one
            raise AuthenticationError("not logged in: run `nextstat-pro login` (or set NSP_TOKEN)")
        return self._ctx

    def close(self) -> None:
        pass  # the instance belongs to the invocation's State, which closes it

    # identity and sessions
    def sign_in(self, username: str, password: str) -> Credential:
        return auth.sign_in(self.instance, username, password)

    def logout(self) -> None:
        auth.logout(self.instance, self.ctx)

    def whoami(self) -> WhoAmI:
        return users.whoami(self.instance, self.ctx)

    def change_password(self, old: str, new: str) -> None:
        auth.change_password(self.instance, self.ctx, old, new)

    def complete_reset(self, username: str, token: str, new_password: str) -> ResetCompleted:
        return resets.complete_reset(self.instance, username, token, new_password)

    def create_user(self, *, username: str, printed_name: str, password: str, email: str | None,
                    instance_admin: bool, auditor: bool) -> UserRow:
        return users.create_user(self.instance, self.ctx, username=username, printed_name=printed_name,
                                 password=password, email=email, instance_admin=instance_admin, auditor=auditor)

    def set_auditor(self, username: str, auditor: bool, reason: str) -> UserRow:
        return users.set_auditor(self.instance, self.ctx, username, auditor, reason)

    def list_users(self) -> list[UserRow]:
        return users.list_users(self.instance, self.ctx)

    def disable_user(self, username: str, reason: str) -> UserRow:
        return users.disable_user(self.instance, self.ctx, username, reason)

    def reset_password(self, username: str, reason: str) -> ResetRequested:
        return resets.reset_password(self.instance, self.ctx, username, reason)

    def approve_reset(self, username: str, reason: str) -> ResetApproved:
        return resets.approve_reset(self.instance, self.ctx, username, reason)

    def grant_role(self, username: str, project: str, role: str, reason: str) -> RoleBindingRow:
        return users.grant_role(self.instance, self.ctx, username, project, role, reason)

    def list_role_bindings(self, project: str) -> list[RoleBindingRow]:
        return users.list_role_bindings(self.instance, self.ctx, project)

    def revoke_role(self, username: str, project: str, reason: str) -> RoleBindingRow:
        return users.revoke_role(self.instance, self.ctx, username, project, reason)

    def create_token(self, project: str, role: str, name: str, days: int) -> Credential:
        return auth.create_token(self.instance, self.ctx, project, role, name, days)

    def list_tokens(self) -> list[TokenRow]:
        return auth.list_tokens(self.instance, self.ctx)

    def revoke_token(self, token_id: str, reason: str) -> TokenRow:
        return auth.revoke_token(self.instance, self.ctx, token_id, reason)

    # configuration and projects
    def show_config(self) -> InstanceConfig:
        return show_config(self.instance, self.ctx)

    def set_config(self, key: str, raw_value: str, reason: str) -> None:
        set_config(self.instance, self.ctx, key, raw_value, reason)

    def list_projects(self) -> list[ProjectRow]:
        return projects.list_rows(self.instance, self.ctx)

    def create_project(self, name: str, description: str) -> ProjectRow:
        return projects.create(self.instance, self.ctx, name, description)

    # runs
    def run_task(self, request: RunRequest) -> RunOutcome:
        return run_task(self.instance, self.ctx, request)

    def list_runs(self, project: str, f: RunFilter, limit: int) -> list[RunRow]:
        return list_run_rows(self.instance, self.ctx, project, limit=limit, f=f)

    def show_run(self, run_ref: str) -> RunDetail:
        return show_run(self.instance, self.ctx, run_ref)

    def run_result(self, run_ref: str) -> dict[str, Any] | None:
        return run_result(self.instance, self.ctx, run_ref)

    def run_artifacts(self, run_ref: str) -> list[ArtifactRow]:
        return run_artifacts(self.instance, self.ctx, run_ref)

    def export_run(self, run_ref: str, dest: Path) -> RunExport:
        return export_folder(self.instance, self.ctx, run_ref, dest)

    def sign_run(self, run_ref: str, meaning: str, reason: str, password: str, username: str | None,
                 decision: str) -> SignResult:
        return sign_run(self.instance, self.ctx, run_ref, meaning, reason, password, username, decision)

    # jobs
    def submit(self, request: SubmitRequest) -> str:
        return jobs.submit(self.instance, self.ctx, request)

    def job_status(self, run_id: str) -> JobStatus:
        return jobs.status_of(self.instance, self.ctx, run_id)

    def job_summary(self, run_id: str) -> JobSummary | None:
        return jobs.summary(self.instance, self.ctx, run_id)

    def cancel_job(self, run_id: str, reason: str) -> None:
        jobs.cancel(self.instance, self.ctx, run_id, reason)

    def start_coordinator(self, run_id: str) -> CoordinatorStarted:
        started = coordinator.start_process(self.instance, self.ctx, run_id)
        return CoordinatorStarted(run_id=started.run_id, pid=started.pid, log=started.log)

    def coordinate(self, run_id: str, on_progress: Callable[[JobProgress], None]) -> str:
        return coordinator.coordinate(self.instance, self.ctx, run_id, on_progress)

    # registry
    def push_file(self, project: str, kind: str, name: str, file: Path, version: str | None, description: str,
                  tags: list[str], base: str | None) -> Pushed:
        return hub.push_file(self.instance, self.ctx, project, kind, name, file, version, description, tags, base)

    def import_manifest(self, project: str, kind: str, manifest: Path, batch: int,
                        progress: Callable[[ImportReport], None] | None) -> ImportReport:
        return imports.import_manifest(self.instance, self.ctx, project, kind, manifest, batch, progress=progress)

    def import_likelihood(self, project: str, archive: Path, name: str, version: str, description: str | None,
                          tags: tuple[str, ...], max_bytes: int) -> LikelihoodImport:
        return likelihood.import_likelihood(self.instance, self.ctx, project, archive, name, version, description,
                                            tags, max_bytes)

    def list_items(self, project: str, kind: str, tags: list[str]) -> list[VersionDoc]:
        return hub.list_items(self.instance, self.ctx, project, kind, tags)

    def versions(self, project: str, kind: str, name: str) -> list[VersionDoc]:
        return hub.versions(self.instance, self.ctx, project, kind, name)

    def show_version(self, project: str, kind: str, ref: str, runs: bool) -> VersionDetail:
        return hub.show(self.instance, self.ctx, project, kind, ref, runs)

    def set_alias(self, project: str, kind: str, ref: str, alias: str, reason: str) -> VersionDoc:
        return hub.set_alias(self.instance, self.ctx, project, kind, ref, alias, reason)

    def edit_version(self, project: str, kind: str, ref: str, reason: str, tags: list[str], remove: list[str],
                     description: str | None) -> VersionDoc:
        return hub.edit(self.instance, self.ctx, project, kind, ref, reason, tags, remove, description)

    def archive_version(self, project: str, kind: str, ref: str, reason: str) -> VersionDoc:
        return retention.archive(self.instance, self.ctx, project, kind, ref, reason)

    def purge_version(self, project: str, kind: str, ref: str, reason: str) -> VersionDoc:
        return retention.purge(self.instance, self.ctx, project, kind, ref, reason)

    def diff_models(self, project: str, ref_a: str, ref_b: str) -> ModelDiff:
        return hub.diff_models(self.instance, self.ctx, project, ref_a, ref_b)

    # audit
    def make_checkpoint(self) -> CheckpointRow:
        return audit.make_checkpoint(self.instance, self.ctx)

    def list_checkpoints(self) -> list[CheckpointRow]:
        return audit.list_checkpoints(self.instance, self.ctx)

    def prove(self, ref: str) -> InclusionProof:
        return audit.prove(self.instance, self.ctx, ref)

    def consistency(self, size1: int, size2: int) -> ConsistencyProof:
        return audit.consistency(self.instance, self.ctx, size1, size2)

    def read_events(self, f: EventFilter, after_seq: int, limit: int) -> list[AuditEventRow]:
        return audit.read_events(self.instance, self.ctx, f, after_seq=after_seq, limit=limit)

    def history(self, target_type: str, target_id: str) -> list[AuditEventRow]:
        return audit.history(self.instance, self.ctx, target_type, target_id)

    def export_audit(self, dest: Path, fmt: str, since: str | None, until: str | None) -> AuditExportSummary:
        return export_bundle(self.instance, self.ctx, dest, fmt, since, until)  # type: ignore[arg-type]

    def verify_audit(self, state: bool) -> AuditVerifyReport:
        return audit.verify(self.instance, self.ctx, state=state)

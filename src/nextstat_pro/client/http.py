"""``HttpClient``: the ``Client`` of a NextStat Pro server (``nextstat-pro serve``), over its API
``/api/v1`` with a bearer token.

Requests carry JSON bodies, or multipart forms whose files httpx streams from disk (each with its
sha256, which the server checks before storing anything); downloads (a run's export, an audit
bundle) stream to a temp file beside their destination and are unpacked there. Responses are
parsed back into the service's view models. An RFC 9457 problem is raised as the ``NSPError``
of its ``exit_code``, with the server's ``detail`` as message and its ``fields``: ``cli.main``
then prints the line and exits with the code local mode would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

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
from ..errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    InputError,
    IntegrityError,
    NotFoundError,
    NSPError,
    PermissionDeniedError,
    TaskFailedError,
    UsageError,
)
from ..files import require_empty
from ..hub.resolve import ROLES
from ..hub.views import ImportReport, LikelihoodImport, ModelDiff, Pushed, VersionDetail, VersionDoc
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
from ..projects.views import ProjectRow
from ..runs.esignatures import SignResult
from ..runs.listing import RunFilter
from ..runs.service import RunRequest
from ..runs.views import ArtifactRow, RunDetail, RunExport, RunOutcome, RunPage, RunRow
from ..scale.service import SubmitRequest
from ..scale.views import JobProgress, JobStatus, JobSummary
from .base import CoordinatorStarted

M = TypeVar("M", bound=BaseModel)
CHUNK = 1 << 20
POLL_S = 0.25  # how often a job is polled while the CLI waits for it
FINISHED = ("succeeded", "failed", "cancelled")

# A problem's exit code → the error class local mode raises for it (errors.py).
_ERRORS: dict[int, type[NSPError]] = {
    2: UsageError, 3: InputError, 4: NotFoundError, 5: ConflictError, 6: PermissionDeniedError,
    7: IntegrityError, 8: TaskFailedError, 9: ConfigError, 10: AuthenticationError,
}


class ServerUnreachableError(ConfigError):
    """The server named by ``--server`` / ``NSP_SERVER`` did not answer (exit 9: misconfigured)."""


def problem_error(response: httpx.Response) -> NSPError:
    """The ``NSPError`` of a failed response: a problem document's, or one that says what came."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("detail"), str):
        return NSPError(f"the server answered HTTP {response.status_code} {response.reason_phrase} "
                        f"to {response.request.method} {response.request.url.path}")
    code = doc.get("exit_code")
    exit_code = code if isinstance(code, int) else 1
    exc = _ERRORS.get(exit_code, NSPError)(doc["detail"])
    exc.exit_code, exc.http_status = exit_code, response.status_code
    fields = doc.get("fields")
    if isinstance(fields, list):
        # options_for (cli/common.py) names the command's options for these request fields
        vars(exc)["fields"] = tuple(str(f) for f in fields)
    return exc


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _checked(role: str, path: Path) -> Path:
    """``path`` as a file to upload, refused in the words local mode reads it with (engine.inputs;
    a manifest and an archive as hub.imports and hub.likelihood word it)."""
    if not path.exists():
        raise InputError(f"{role} not found: {path}" if role in ("manifest", "archive")
                         else f"{role} file not found: {path}")
    if path.is_dir():
        raise InputError(f"{role} path is a folder, not a file: {path}")
    return path


def _seg(text: str) -> str:
    return quote(text, safe="")


def _unzip_into(archive: Path, dest: Path) -> int:
    """Unpack the server's zip (one top folder) into the new or empty folder ``dest``, owner-only
    (as ``files.place_folder`` writes a local export), through a temp sibling renamed at the end.
    Returns the number of files."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    files = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                parts = PurePosixPath(info.filename).parts[1:]  # below the zip's top folder
                if info.is_dir() or not parts:
                    continue
                if any(p in ("..", "") or "\\" in p for p in parts) or info.filename.startswith("/"):
                    raise IntegrityError(f"the server's archive holds an unsafe path {info.filename!r}")
                target = tmp.joinpath(*parts)
                for folder in reversed(target.relative_to(tmp).parents[:-1]):
                    if not (tmp / folder).is_dir():
                        os.mkdir(tmp / folder)
                        os.chmod(tmp / folder, 0o700)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with zf.open(info) as src, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                files += 1
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


class HttpClient:
    """The API of the server at ``url`` as the holder of ``token`` (None: only ``sign_in`` and
    ``complete_reset`` work, and the server refuses the rest as local mode would)."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 300.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.where = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.where + "/api/v1", headers=headers, timeout=timeout,
                                  transport=transport, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    # plumbing
    @contextlib.contextmanager
    def _send(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise problem_error(response)
                yield response
        except httpx.TransportError as exc:
            raise ServerUnreachableError(f"cannot reach the server at {self.where}: {exc}") from None

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._send(method, path, **kwargs) as response:
            response.read()
            return response

    def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return model.model_validate_json(self._call(method, path, **kwargs).content)

    def _list(self, model: type[M], method: str, path: str, **kwargs: Any) -> list[M]:
        return TypeAdapter(list[model]).validate_json(self._call(method, path, **kwargs).content)  # type: ignore[valid-type]

    @contextlib.contextmanager
    def _uploads(self, files: dict[str, tuple[str, Path]]) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
        """Open ``files`` (field → (role, path)) for a multipart body httpx streams, with their digests."""
        with contextlib.ExitStack() as stack:
            handles: dict[str, tuple[str, IO[bytes], str]] = {}
            digests: dict[str, str] = {}
            for field, (role, path) in files.items():
                _checked(role, path)
                digests[field] = _digest(path)
                handles[field] = (path.name, stack.enter_context(path.open("rb")), "application/octet-stream")
            yield handles, digests

    def _download(self, path: str, dest: Path, params: dict[str, Any] | None = None) -> int:
        """Stream a zip the server sends into ``dest`` (new or empty); the number of files."""
        require_empty(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.download-", suffix=".zip")
        archive = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, self._send("GET", path, params=params) as response:
                for chunk in response.iter_bytes(CHUNK):
                    out.write(chunk)
            return _unzip_into(archive, dest)
        finally:
            archive.unlink(missing_ok=True)

    # identity and sessions
    def sign_in(self, username: str, password: str) -> Credential:
        doc = self._call("POST", "/auth/token", json={"username": username, "password": password}).json()
        return Credential(token=doc["token"], token_id=doc["token_id"],
                          expires_at=datetime.fromisoformat(doc["expires_at"]))

    def logout(self) -> None:
        self._call("POST", "/auth/logout")

    def whoami(self) -> WhoAmI:
        return self._model(WhoAmI, "GET", "/me")

    def change_password(self, old: str, new: str) -> None:
        self._call("POST", "/me/password", json={"current_password": old, "new_password": new})

    def complete_reset(self, username: str, token: str, new_password: str) -> ResetCompleted:
        return self._model(ResetCompleted, "POST", "/password-reset/complete",
                           json={"username": username, "token": token, "new_password": new_password})

    def create_user(self, *, username: str, printed_name: str, password: str, email: str | None,
                    instance_admin: bool, auditor: bool) -> UserRow:
        return self._model(UserRow, "POST", "/users", json={
            "username": username, "printed_name": printed_name, "password": password, "email": email,
            "instance_admin": instance_admin, "auditor": auditor})

    def set_auditor(self, username: str, auditor: bool, reason: str) -> UserRow:
        return self._model(UserRow, "PUT", f"/users/{_seg(username)}/auditor",
                           json={"auditor": auditor, "reason": reason})

    def list_users(self) -> list[UserRow]:
        return self._list(UserRow, "GET", "/users")

    def disable_user(self, username: str, reason: str) -> UserRow:
        return self._model(UserRow, "POST", f"/users/{_seg(username)}/disable", json={"reason": reason})

    def reset_password(self, username: str, reason: str) -> ResetRequested:
        return self._model(ResetRequested, "POST", f"/users/{_seg(username)}/password-reset",
                           json={"reason": reason})

    def approve_reset(self, username: str, reason: str) -> ResetApproved:
        return self._model(ResetApproved, "POST", f"/users/{_seg(username)}/password-reset/approve",
                           json={"reason": reason})

    def grant_role(self, username: str, project: str, role: str, reason: str) -> RoleBindingRow:
        return self._model(RoleBindingRow, "PUT", f"/projects/{_seg(project)}/roles/{_seg(username)}",
                           json={"role": role, "reason": reason})

    def list_role_bindings(self, project: str) -> list[RoleBindingRow]:
        return self._list(RoleBindingRow, "GET", f"/projects/{_seg(project)}/roles")

    def revoke_role(self, username: str, project: str, reason: str) -> RoleBindingRow:
        return self._model(RoleBindingRow, "POST", f"/projects/{_seg(project)}/roles/{_seg(username)}/revoke",
                           json={"reason": reason})

    def create_token(self, project: str, role: str, name: str, days: int) -> Credential:
        doc = self._call("POST", "/tokens", json={"project": project, "role": role, "name": name,
                                                  "days": days}).json()
        return Credential(token=doc["token"], token_id=doc["token_id"],
                          expires_at=datetime.fromisoformat(doc["expires_at"]))

    def list_tokens(self) -> list[TokenRow]:
        return self._list(TokenRow, "GET", "/tokens")

    def revoke_token(self, token_id: str, reason: str) -> TokenRow:
        return self._model(TokenRow, "POST", f"/tokens/{_seg(token_id)}/revoke", json={"reason": reason})

    # configuration and projects
    def show_config(self) -> InstanceConfig:
        return self._model(InstanceConfig, "GET", "/config")

    def set_config(self, key: str, raw_value: str, reason: str) -> None:
        # The command's text as the JSON value the service would parse it to (a bare word: a string).
        try:
            value: Any = json.loads(raw_value)
        except ValueError:
            value = raw_value
        self._call("PUT", "/config", json={"key": key, "value": value, "reason": reason})

    def list_projects(self) -> list[ProjectRow]:
        return self._list(ProjectRow, "GET", "/projects")

    def create_project(self, name: str, description: str) -> ProjectRow:
        return self._model(ProjectRow, "POST", "/projects", json={"name": name, "description": description})

    # runs
    def run_task(self, request: RunRequest) -> RunOutcome:
        given = request.given
        if given is None:
            raise UsageError("a run over HTTP names its inputs (files to upload or registry references)")
        files = {field: (field, path) for field, path in (("workspace", given.workspace),
                                                          ("patchset", given.patchset)) if path is not None}
        data: dict[str, Any] = {"task": request.task, "params": json.dumps(request.params)}
        # As local mode reads it: a dataset is a file if one exists at that path, else a reference.
        if given.dataset is not None and Path(given.dataset).exists():
            files["dataset"] = ("dataset", Path(given.dataset))
        elif given.dataset is not None:
            data["dataset_ref"] = given.dataset
        for key, value in (("seed", request.seed), ("model", given.model), ("patch", given.patch)):
            if value is not None:
                data[key] = str(value)
        with self._uploads(files) as (handles, digests):
            data["digests"] = json.dumps(digests)
            return self._model(RunOutcome, "POST", f"/projects/{_seg(request.project)}/runs", data=data,
                               files=handles)

    def list_runs(self, project: str, f: RunFilter, limit: int) -> list[RunRow]:
        rows: list[RunRow] = []
        cursor: str | None = None
        fit_ok = None if f.fit_ok is None else str(f.fit_ok).lower()
        filters = {"status": f.status, "task": f.task, "since": f.since.isoformat() if f.since else None,
                   "until": f.until.isoformat() if f.until else None, "author": f.created_by, "fit_ok": fit_ok,
                   "version": f.version, "approval": f.approval, "q": f.text, "sort": f.sort,
                   "min_duration_s": f.min_duration_s, "max_duration_s": f.max_duration_s}
        while len(rows) < limit:
            params: dict[str, Any] = {"limit": min(500, limit - len(rows))}
            params.update((k, v) for k, v in {**filters, "cursor": cursor}.items() if v is not None)
            page = self._model(RunPage, "GET", f"/projects/{_seg(project)}/runs", params=params)
            rows.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        return rows

    def show_run(self, run_ref: str) -> RunDetail:
        return self._model(RunDetail, "GET", f"/runs/{_seg(run_ref)}")

    def run_result(self, run_ref: str) -> dict[str, Any] | None:
        doc = self._call("GET", f"/runs/{_seg(run_ref)}/result").json()
        return doc if isinstance(doc, dict) else None

    def run_artifacts(self, run_ref: str) -> list[ArtifactRow]:
        return self._list(ArtifactRow, "GET", f"/runs/{_seg(run_ref)}/artifacts")

    def export_run(self, run_ref: str, dest: Path) -> RunExport:
        files = self._download(f"/runs/{_seg(run_ref)}/export", dest)
        manifest = json.loads((dest / "manifest.json").read_bytes())
        return RunExport(run_id=manifest["run_id"], path=str(dest.resolve()),
                         manifest_digest=_digest(dest / "manifest.json"), files=files)

    def sign_run(self, run_ref: str, meaning: str, reason: str, password: str, username: str | None,
                 decision: str) -> SignResult:
        doc = self._call("POST", f"/runs/{_seg(run_ref)}/signatures", json={
            "meaning": meaning, "reason": reason, "password": password, "username": username,
            "decision": decision}).json()
        return SignResult(signature_id=doc["signature_id"], approval_state=doc["approval_state"],
                          payload=doc["payload"])

    # jobs
    def submit(self, request: SubmitRequest) -> str:
        given = request.given
        if given is None:
            raise UsageError("a job over HTTP names its inputs (files to upload or registry references)")
        files = {field: (field, path) for field, path in (("workspace", given.workspace),
                                                          ("patchset", given.patchset)) if path is not None}
        data: dict[str, Any] = {
            "task": request.task, "params": json.dumps(request.params), "shards": str(request.shards),
            "backend": request.backend, "backend_options": json.dumps(request.backend_options),
            "workers": str(request.workers), "point_task": request.point_task, "retries": str(request.max_retries),
            "model": list(given.models), "patches": list(request.patches or []),
            "start": "false"}  # started apart (start_coordinator), as local mode does
        for key, value in (("seed", request.seed), ("result_name", request.result_name)):
            if value is not None:
                data[key] = str(value)
        with self._uploads(files) as (handles, digests):
            data["digests"] = json.dumps(digests)
            doc = self._call("POST", f"/projects/{_seg(request.project)}/jobs", data=data, files=handles).json()
        return str(doc["job"]["run_id"])

    def job_status(self, run_id: str) -> JobStatus:
        return self._model(JobStatus, "GET", f"/runs/{_seg(run_id)}/shards")

    def job_summary(self, run_id: str) -> JobSummary | None:
        doc = self._call("GET", f"/runs/{_seg(run_id)}/summary").json()
        return None if doc is None else JobSummary.model_validate(doc)

    def cancel_job(self, run_id: str, reason: str) -> None:
        self._call("POST", f"/runs/{_seg(run_id)}/cancel", json={"reason": reason})

    def start_coordinator(self, run_id: str) -> CoordinatorStarted:
        doc = self._call("POST", f"/runs/{_seg(run_id)}/resume").json()
        return CoordinatorStarted(run_id=doc["run_id"], pid=int(doc["pid"]), log=None)

    def coordinate(self, run_id: str, on_progress: Callable[[JobProgress], None]) -> str:
        """The server's coordinator drives the job; this polls its shards until it ends."""
        self.start_coordinator(run_id)
        while True:
            status = self.job_status(run_id)
            on_progress(status.progress)
            if status.status in FINISHED:
                return status.status
            time.sleep(POLL_S)

    # registry
    def _hub(self, project: str, kind: str) -> str:
        return f"/projects/{_seg(project)}/hub/{_seg(kind)}"

    def push_file(self, project: str, kind: str, name: str, file: Path, version: str | None, description: str,
                  tags: list[str], base: str | None) -> Pushed:
        data: dict[str, Any] = {"name": name, "description": description, "tag": list(tags)}
        for key, value in (("version", version), ("base", base)):
            if value is not None:
                data[key] = value
        with self._uploads({"file": (ROLES.get(kind, kind), file)}) as (handles, digests):
            data["digest"] = digests["file"]
            return self._model(Pushed, "POST", f"{self._hub(project, kind)}/versions", data=data, files=handles)

    def import_manifest(self, project: str, kind: str, manifest: Path, batch: int,
                        progress: Callable[[ImportReport], None] | None) -> ImportReport:
        """The manifest and the files it names (inside its folder) as one zip; the server imports it."""
        _checked("manifest", manifest)
        with tempfile.TemporaryDirectory(prefix="nsp-import-") as work:
            bundle = Path(work) / "bundle.zip"
            _zip_manifest(manifest, bundle)
            with self._uploads({"bundle": ("bundle", bundle)}) as (handles, digests):
                return self._model(ImportReport, "POST", f"{self._hub(project, kind)}/imports", files=handles,
                                   data={"manifest": manifest.name, "batch": str(batch), "digest": digests["bundle"]})

    def import_likelihood(self, project: str, archive: Path, name: str, version: str, description: str | None,
                          tags: tuple[str, ...], max_bytes: int) -> LikelihoodImport:
        data: dict[str, Any] = {"name": name, "version": version, "tag": list(tags), "max_mb": str(max_bytes >> 20)}
        if description is not None:
            data["description"] = description
        with self._uploads({"archive": ("archive", archive)}) as (handles, digests):
            data["digest"] = digests["archive"]
            return self._model(LikelihoodImport, "POST", f"/projects/{_seg(project)}/hub/likelihoods", data=data,
                               files=handles)

    def list_items(self, project: str, kind: str, tags: list[str]) -> list[VersionDoc]:
        return self._list(VersionDoc, "GET", self._hub(project, kind), params={"tag": tags})

    def versions(self, project: str, kind: str, name: str) -> list[VersionDoc]:
        return self._list(VersionDoc, "GET", f"{self._hub(project, kind)}/items/{_seg(name)}/versions")

    def show_version(self, project: str, kind: str, ref: str, runs: bool) -> VersionDetail:
        return self._model(VersionDetail, "GET", f"{self._hub(project, kind)}/resolve",
                           params={"ref": ref, "runs": "true" if runs else "false"})

    def set_alias(self, project: str, kind: str, ref: str, alias: str, reason: str) -> VersionDoc:
        return self._model(VersionDoc, "PUT", f"{self._hub(project, kind)}/aliases/{_seg(alias)}",
                           json={"ref": ref, "reason": reason})

    def edit_version(self, project: str, kind: str, ref: str, reason: str, tags: list[str], remove: list[str],
                     description: str | None) -> VersionDoc:
        return self._model(VersionDoc, "PATCH", f"{self._hub(project, kind)}/versions/{_seg(ref)}",
                           json={"reason": reason, "tags": tags, "remove_tags": remove, "description": description})

    def archive_version(self, project: str, kind: str, ref: str, reason: str) -> VersionDoc:
        return self._model(VersionDoc, "POST", f"{self._hub(project, kind)}/versions/{_seg(ref)}/archive",
                           json={"reason": reason})

    def purge_version(self, project: str, kind: str, ref: str, reason: str) -> VersionDoc:
        return self._model(VersionDoc, "POST", f"{self._hub(project, kind)}/versions/{_seg(ref)}/purge",
                           json={"reason": reason})

    def diff_models(self, project: str, ref_a: str, ref_b: str) -> ModelDiff:
        return self._model(ModelDiff, "GET", f"/projects/{_seg(project)}/hub/model/diff",
                           params={"a": ref_a, "b": ref_b})

    # audit
    def make_checkpoint(self) -> CheckpointRow:
        return self._model(CheckpointRow, "POST", "/audit/checkpoints")

    def list_checkpoints(self) -> list[CheckpointRow]:
        return self._list(CheckpointRow, "GET", "/audit/checkpoints")

    def prove(self, ref: str) -> InclusionProof:
        return self._model(InclusionProof, "GET", f"/audit/proofs/inclusion/{_seg(ref)}")

    def consistency(self, size1: int, size2: int) -> ConsistencyProof:
        return self._model(ConsistencyProof, "GET", "/audit/proofs/consistency",
                           params={"first": size1, "second": size2})

    def read_events(self, f: EventFilter, after_seq: int, limit: int) -> list[AuditEventRow]:
        filters = {k: v for k, v in (("actor", f.actor), ("action", f.action), ("target_type", f.target_type),
                                     ("target_id", f.target_id), ("project", f.project), ("since", f.since),
                                     ("until", f.until), ("text", f.text)) if v is not None}
        rows: list[AuditEventRow] = []
        after: int | None = after_seq
        while after is not None and len(rows) < limit:  # the server's pages are at most 1000 events
            doc = self._call("GET", "/audit/events",
                             params={**filters, "after": after, "limit": min(1000, limit - len(rows))}).json()
            rows.extend(AuditEventRow.model_validate(item) for item in doc["items"])
            after = doc["next_after"]
        return rows

    def history(self, target_type: str, target_id: str) -> list[AuditEventRow]:
        return self._list(AuditEventRow, "GET", f"/audit/history/{_seg(target_type)}/{_seg(target_id)}")

    def export_audit(self, dest: Path, fmt: str, since: str | None, until: str | None) -> AuditExportSummary:
        params = {k: v for k, v in (("format", fmt), ("since", since), ("until", until)) if v is not None}
        self._download("/audit/export", dest, params)
        return AuditExportSummary.model_validate_json((dest / "bundle.json").read_bytes())

    def verify_audit(self, state: bool) -> AuditVerifyReport:
        return self._model(AuditVerifyReport, "POST", "/audit/verify", params={"state": "true" if state else "false"})


def _zip_manifest(manifest: Path, bundle: Path) -> None:
    """A zip of ``manifest`` and of the files its lines name inside its folder (the server reads
    nothing outside the zip: a line naming a file elsewhere is refused there, as a missing file)."""
    root = manifest.parent.resolve()
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(manifest, manifest.name)
        seen: set[str] = set()
        for line in manifest.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the server reports the line as local mode does
            name = entry.get("file") if isinstance(entry, dict) else None
            if not isinstance(name, str) or name in seen:
                continue
            path = (root / name).resolve()
            if path.is_file() and path.is_relative_to(root):
                seen.add(name)
                zf.write(path, path.relative_to(root).as_posix())

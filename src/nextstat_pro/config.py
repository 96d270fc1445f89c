"""The instance configuration file (``<home>/config.json``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from .errors import ConfigError
from .permissions import FilePolicy, modes_for

CONFIG_NAME = "config.json"
DEFAULT_HOME = ".nextstat-pro"


class RetentionPolicy(BaseModel):
    """Minimum years to keep each record class, and legal holds (projects or run ids)."""

    min_years: dict[str, float] = Field(default_factory=lambda: {"run_artifacts": 10.0})
    legal_hold_projects: list[str] = Field(default_factory=list)
    legal_hold_runs: list[str] = Field(default_factory=list)


class AuthPolicy(BaseModel):
    min_password_length: int = Field(default=12, ge=8)
    # The zxcvbn score (0-4) a new password must reach; 3 resists an offline attack on a slow
    # hash (10^8 guesses and more). See docs/security.md.
    min_password_score: int = Field(default=3, ge=0, le=4)
    max_password_age_days: int = Field(default=365, ge=1)
    lockout_attempts: int = Field(default=5, ge=1)
    session_hours: float = Field(default=12, gt=0)
    # 21 CFR 11.200: after this long without signing, a signature needs username and password again.
    signing_idle_minutes: float = Field(default=15, gt=0)
    token_max_days: int = Field(default=365, ge=1)


SIGNATURE_MEANINGS = ("authorship", "review", "approval", "responsibility")
"""What an electronic signature may mean (21 CFR 11.50(a)(3)); signing/approval.py's MEANINGS."""


class ApprovalPolicy(BaseModel):
    """Which signatures make a run approved: meanings in ``sequence`` must come in that order,
    by distinct people, none of them the run's author; ``min_approvals`` approval signatures."""

    sequence: list[str] = Field(default_factory=lambda: ["review", "approval"])
    min_approvals: int = Field(default=1, ge=1)
    distinct_people: bool = True
    author_may_approve: bool = False
    # Who may sign with meaning ``approval``: at least this project role (an instance admin
    # counts as a project admin) and, when ``approvers`` is not empty, one of those usernames (a
    # named group such as QA). Viewer access, which lets one read and review a run, is not
    # enough to approve it.
    approver_role: Literal["viewer", "editor", "admin"] = "admin"
    approvers: list[str] = Field(default_factory=list)

    @field_validator("sequence")
    @classmethod
    def _known_meanings(cls, sequence: list[str]) -> list[str]:
        # An unknown meaning (a typo) would make every run of the project impossible to approve.
        unknown = [m for m in sequence if m not in SIGNATURE_MEANINGS]
        if unknown:
            raise ValueError(f"unknown meaning {unknown[0]!r} in the sequence (meanings: "
                             f"{', '.join(SIGNATURE_MEANINGS)})")
        return sequence


class SmtpConfig(BaseModel):
    """The instance's outgoing mail. A password reset sends its one-time token to the user's own
    address over it: a channel the administrator who asked for the reset does not see
    (docs/identity.md). The password is never in config.json: ``password_env`` names the
    environment variable that holds it."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    from_address: str = Field(min_length=3, max_length=320)
    # starttls (port 587) or ssl (implicit TLS, port 465); none only for a relay on this host.
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    # How long an e-mailed reset token stays usable: a mailbox is read within the hour.
    reset_token_minutes: int = Field(default=60, ge=5, le=7 * 24 * 60)


class ServerConfig(BaseModel):
    """``nextstat-pro serve``: request limits and browser sessions. A browser session expires
    ``auth.session_hours`` after sign-in (absolute) or after ``session_idle_minutes`` without a
    request (idle), whichever comes first."""

    # Any request body; uploads stream to a spool file and are refused (413) past this.
    max_body_bytes: int = Field(default=2 << 30, ge=1024)
    # A JSON body (no upload) is parsed in memory: a far smaller bound.
    max_json_bytes: int = Field(default=1 << 20, ge=1024)
    session_idle_minutes: float = Field(default=30, gt=0)
    # Sign-in attempts per client address and minute (per server process), before the lockout
    # of ``auth.lockout_attempts`` failures per account.
    login_attempts_per_minute: int = Field(default=10, ge=1)
    # Behind a TLS reverse proxy: trust its X-Forwarded-Proto/For (HSTS, Secure cookies).
    trust_proxy_headers: bool = False
    # Request threads per server process: the services are synchronous and each thread keeps a
    # database connection (db/session.py sizes the pools for up to 16).
    threads: int = Field(default=8, ge=1, le=16)


JwsAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
DEFAULT_ID_TOKEN_ALGORITHMS: tuple[JwsAlgorithm, ...] = ("RS256", "PS256", "ES256", "EdDSA")


class OidcConfig(BaseModel):
    """An OpenID Connect provider (authorization code + PKCE). The client secret is never in
    config.json: ``client_secret_env`` names the environment variable that holds it (none: a
    public client, PKCE alone)."""

    # Exactly the ``iss`` of its ID tokens; discovery is read from <issuer>/.well-known/openid-configuration.
    issuer: str = Field(min_length=8, max_length=500)
    client_id: str = Field(min_length=1, max_length=200)
    client_secret_env: str | None = Field(default=None, max_length=100)
    # This server's callback as the browser reaches it (behind a proxy: the public URL).
    redirect_url: str = Field(min_length=8, max_length=500)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    username_claim: str = "preferred_username"
    name_claim: str = "name"
    email_claim: str = "email"
    groups_claim: str | None = "groups"
    # Signature algorithms an ID token may use (never "none", never a shared-secret HS*).
    algorithms: list[JwsAlgorithm] = Field(default_factory=lambda: list(DEFAULT_ID_TOKEN_ALGORITHMS))
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class SamlConfig(BaseModel):
    """A SAML 2.0 identity provider; this server is the service provider (SP). Assertions must be
    signed by a key of the IdP's metadata."""

    # The IdP's metadata: a file path or an https URL (read when the server starts a sign-in).
    idp_metadata: str = Field(min_length=1, max_length=1000)
    sp_entity_id: str = Field(min_length=1, max_length=500)
    # The assertion consumer service: this server's /api/v1/auth/saml/acs as the browser reaches it.
    acs_url: str = Field(min_length=8, max_length=500)
    username_attribute: str = "uid"
    name_attribute: str | None = "displayName"
    email_attribute: str | None = "mail"
    groups_attribute: str | None = "memberOf"
    xmlsec_binary: str = "/usr/bin/xmlsec1"


class SsoConfig(BaseModel):
    """Single sign-on (docs/sso.md): OpenID Connect and/or SAML. ``group_roles`` maps an IdP group
    to project roles (``{"qa": {"default": "viewer"}}``); in each project it names, an SSO user's
    role follows their groups at every sign-in (the highest one wins; none: the role is revoked)."""

    oidc: OidcConfig | None = None
    saml: SamlConfig | None = None
    group_roles: dict[str, dict[str, Literal["viewer", "editor", "admin"]]] = Field(default_factory=dict)
    # How long a started sign-in may take at the IdP before its state (and a SAML request id) expires.
    login_minutes: float = Field(default=10, gt=0, le=120)
    # Leeway for the IdP's clock in expiry and issued-at checks.
    clock_skew_s: float = Field(default=60, ge=0, le=600)


class InstanceConfig(BaseModel):
    format: int = 1
    instance_id: str
    db_url: str
    store_url: str
    default_project: str = "default"
    admin: str
    # The audit log: its C2SP origin line, and where checkpoints are witnessed outside the
    # database (a folder or s3://bucket/prefix).
    log_origin: str
    witness_url: str
    # Where archived registry versions go (default: <home>/archive, or <store>/archive on S3).
    archive_url: str | None = None
    # The log's tail is witnessed continuously (audit/witnessing.py): after a commit with events,
    # a checkpoint is signed at once when this process's last is at least this old, else batched
    # into the next one or the one at the end of the command. Bounds what deleting recent
    # events could hide.
    checkpoint_interval_s: float = Field(default=1.0, gt=0, le=86_400)
    # `audit verify` fails when an event has waited longer than this for its witnessed
    # checkpoint (a process that died before witnessing, or a tail deleted and re-appended).
    max_unwitnessed_s: float = Field(default=300.0, gt=0)
    # An in-process run renews its lease every third of this; a running run whose lease has
    # expired was abandoned by its process (runs/lease.py). Long enough to ride out a stalled
    # database connection, short enough that a killed run is seen within a minute.
    run_lease_s: float = Field(default=30.0, gt=0, le=86_400)
    retention: RetentionPolicy = Field(default_factory=lambda: RetentionPolicy())
    auth: AuthPolicy = Field(default_factory=lambda: AuthPolicy())
    # Aliases only an admin may move (per instance), and the minimum age before a registry
    # version may be purged.
    protected_aliases: list[str] = Field(default_factory=lambda: ["production", "validated"])
    hub_min_years: float = Field(default=10.0, ge=0)
    # Outgoing mail for password-reset tokens; without it a reset needs a second admin's approval.
    smtp: SmtpConfig | None = None
    # Per project; projects without an entry use the default policy.
    approval: dict[str, ApprovalPolicy] = Field(default_factory=dict)
    # Who may read the instance's files: the owner only, or also the group chosen at init.
    permissions: FilePolicy = Field(default_factory=lambda: FilePolicy())
    # alerts (NS-Alerts): the dispatcher (alerts/dispatcher.py, docs/alerts.md). How often it runs the
    # full `audit verify` for the integrity rule; a failed delivery is retried after alerts_backoff_s,
    # doubling (with jitter) up to alerts_backoff_max_s, until alerts_max_attempts, then dead-lettered;
    # events of one root cause within alerts_group_window_s add to one alert; the dispatcher lease.
    alerts_integrity_interval_s: float = Field(default=600.0, ge=1, le=7 * 86_400)
    alerts_max_attempts: int = Field(default=8, ge=1, le=100)
    alerts_backoff_s: float = Field(default=1.0, gt=0, le=3600)
    alerts_backoff_max_s: float = Field(default=300.0, gt=0, le=86_400)
    alerts_group_window_s: float = Field(default=300.0, ge=0, le=7 * 86_400)
    alerts_send_timeout_s: float = Field(default=5.0, gt=0, le=300)
    alerts_lease_s: float = Field(default=10.0, ge=1, le=3600)
    # reports (NS-Compliance)
    # How many events an audit-trail report or review prints (per risk group for a review); every
    # event of the period is in the PDF's attached events file whatever this says.
    reports_print_limit: int = Field(default=1000, ge=1, le=100_000)
    # server and single sign-on (NS-Server)
    server: ServerConfig = Field(default_factory=lambda: ServerConfig())
    # Single sign-on (OIDC and/or SAML) and its group-to-role mapping; none: local accounts only.
    sso: SsoConfig | None = None

    def approval_policy(self, project: str) -> ApprovalPolicy:
        return self.approval.get(project, ApprovalPolicy())


# What `config set` may change, each change an audited `config.changed` event; the values at
# `init` are in the `instance.initialized` event, so `audit verify` re-derives them all
# (audit/state.py): a hand edit of config.json is a finding.
SETTABLE = (
    "default_project",
    # The projects' approval policies, as one JSON object ({"project": {...policy...}}).
    "approval",
    "checkpoint_interval_s",
    "max_unwitnessed_s",
    "protected_aliases",
    "hub_min_years",
    "retention.min_years",
    "retention.legal_hold_projects",
    "retention.legal_hold_runs",
    "run_lease_s",
    "auth.min_password_length",
    "auth.min_password_score",
    # The whole section as a JSON object (or null: no mail), or one field of it.
    "smtp",
    "smtp.host",
    "smtp.port",
    "smtp.from_address",
    "smtp.security",
    "smtp.username",
    "smtp.password_env",
    "smtp.timeout_s",
    "smtp.reset_token_minutes",
    "server.max_body_bytes",
    "server.max_json_bytes",
    "server.session_idle_minutes",
    "server.login_attempts_per_minute",
    "server.trust_proxy_headers",
    "server.threads",
    # The whole single sign-on section as one JSON object (or null): who may sign in and which
    # roles IdP groups give are security decisions, audited like any other change.
    "sso",
    # alerts (NS-Alerts)
    "alerts_integrity_interval_s",
    "alerts_max_attempts",
    "alerts_backoff_s",
    "alerts_backoff_max_s",
    "alerts_group_window_s",
    "alerts_send_timeout_s",
    "alerts_lease_s",
)


def settable_values(config: InstanceConfig) -> dict[str, Any]:
    """The settable part of ``config`` as JSON values, by top-level key (a section whole)."""
    dumped = config.model_dump(mode="json")
    return {key: dumped[key] for key in dict.fromkeys(k.partition(".")[0] for k in SETTABLE)}


def resolve_home(home: str | Path | None) -> Path:
    return Path(home or os.environ.get("NSP_HOME") or DEFAULT_HOME).absolute()


def config_path(home: Path) -> Path:
    return home / CONFIG_NAME


def load_config(home: Path) -> InstanceConfig:
    path = config_path(home)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"no NextStat Pro instance at {home} (run: nextstat-pro init --home {home})"
        ) from None
    try:
        return InstanceConfig.model_validate_json(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a valid instance configuration: {exc.errors()[0]['msg']}") from None


def write_config(home: Path, config: InstanceConfig) -> None:
    """Write atomically, readable by the owner only (it may name a database password), or also
    by the shared group of an instance that has one."""
    modes = modes_for(config.permissions)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".config-")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(config.model_dump(), fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, modes.file)
        if modes.gid is not None and os.stat(tmp).st_gid != modes.gid:
            os.chown(tmp, -1, modes.gid)
        os.replace(tmp, config_path(home))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The instance configuration file (``<home>/config.json``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from .errors import ConfigError

CONFIG_NAME = "config.json"
DEFAULT_HOME = ".nextstat-pro"


class RetentionPolicy(BaseModel):
    """Minimum years to keep each record class, and legal holds (projects or run ids)."""

    min_years: dict[str, float] = Field(default_factory=lambda: {"run_artifacts": 10.0})
    legal_hold_projects: list[str] = Field(default_factory=list)
    legal_hold_runs: list[str] = Field(default_factory=list)


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
    # A new checkpoint is signed when the newest is older than this, at the end of any command.
    checkpoint_interval_s: int = 3600
    retention: RetentionPolicy = Field(default_factory=lambda: RetentionPolicy())


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
    """Write atomically and readable by the owner only (it may name a database password)."""
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".config-")
    with os.fdopen(fd, "w") as fh:
        json.dump(config.model_dump(), fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, config_path(home))

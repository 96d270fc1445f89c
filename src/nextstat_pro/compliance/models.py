"""Reports and their electronic signatures (migration 0010). Both tables are write-once: a report
is a recorded artifact (its PDF, HTML, data and envelope are store objects named by digest), and a
signed rendition is a new report row whose ``parent_id`` names the report it re-renders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db.models import Base
from ..db.types import UTCDateTime


class Report(Base):
    __tablename__ = "reports"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    template_version_id: Mapped[str] = mapped_column(ForeignKey("hub_versions.id"))
    template_digest: Mapped[str] = mapped_column(String(71))
    record_digest: Mapped[str] = mapped_column(String(71))
    data_digest: Mapped[str] = mapped_column(String(71))
    html_digest: Mapped[str] = mapped_column(String(71))
    pdf_digest: Mapped[str] = mapped_column(String(71))
    envelope_digest: Mapped[str] = mapped_column(String(71))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("reports.id"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))


class ReportSignature(Base):
    __tablename__ = "report_signatures"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    meaning: Mapped[str] = mapped_column(String(20))
    decision: Mapped[str] = mapped_column(String(10))
    payload: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())

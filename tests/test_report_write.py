"""``reports write`` (compliance.service.write_report): a stored report PDF, whose appended audit
events can be hundreds of MB, is copied to the folder a chunk at a time from the store (never
``store.get`` of the whole PDF), digest-checked, and nothing is left behind when it is corrupt."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextstat_pro.compliance.audit_reports import audit_trail
from nextstat_pro.compliance.service import write_report
from nextstat_pro.errors import IntegrityError
from nextstat_pro.instance import Instance
from nextstat_pro.store.local import LocalStore


def test_write_report_copies_the_pdf_in_chunks(instance: Instance, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    w = audit_trail(instance, instance.context(), project="default", out=tmp_path / "made")
    store = instance.store
    real_get, chunks = store.get, []

    def no_whole_pdf(digest: str) -> bytes:
        assert digest != w.pdf_digest, "the whole PDF was read into memory"
        return real_get(digest)

    real_range = store.read_range

    def counted(digest: str, start: int = 0, end: int | None = None):  # type: ignore[no-untyped-def]
        for chunk in real_range(digest, start, end):
            chunks.append(len(chunk))
            yield chunk

    monkeypatch.setattr(store, "get", no_whole_pdf)
    monkeypatch.setattr(store, "read_range", counted)
    again = write_report(instance, instance.context(), w.report_id, tmp_path / "again")
    pdf = Path(again.pdf_path or "")
    assert pdf.read_bytes() == Path(w.pdf_path or "").read_bytes() and max(chunks) <= 1 << 20
    assert Path(again.html_path or "").read_bytes() == Path(w.html_path or "").read_bytes()

    assert isinstance(store, LocalStore)  # a corrupt object: refused, and no PDF written
    obj = store._path(w.pdf_digest)
    obj.chmod(0o600)
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 1
    obj.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="is corrupt"):
        write_report(instance, instance.context(), w.report_id, tmp_path / "corrupt")
    assert not any((tmp_path / "corrupt").iterdir())

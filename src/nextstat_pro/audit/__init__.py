"""NS-Audit: the append-only, hash-chained audit trail."""

from .chain import ChainReport, verify_chain
from .events import append_event, event_document, event_hash

__all__ = ["ChainReport", "append_event", "event_document", "event_hash", "verify_chain"]

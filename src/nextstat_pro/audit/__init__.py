"""NS-Audit: the append-only, hash-chained, Merkle-tree audit trail with signed checkpoints.

``events`` appends (in the caller's transaction), ``tree`` integrates and proves, ``note``
signs and opens checkpoints, ``verify`` re-derives everything, ``proofs`` and ``export``
produce documents verifiable offline, ``service`` ties them to an instance.
"""

from .events import append_event, event_document, event_hash
from .verify import VerifyReport, verify_log

__all__ = ["VerifyReport", "append_event", "event_document", "event_hash", "verify_log"]

"""NS-Audit: the append-only, hash-chained, Merkle-tree audit trail with signed checkpoints.

``events`` appends (in the caller's transaction), ``tree`` integrates, proves and signs
checkpoints (with ``signing.notes``), ``verify`` re-derives everything, ``proofs`` and ``export``
produce documents verifiable offline (by the ``nextstat_pro.verify`` package, which needs none of
this one), ``service`` ties them to an instance.
"""

from .events import append_event, event_document, event_hash
from .verify import VerifyReport, verify_log

__all__ = ["VerifyReport", "append_event", "event_document", "event_hash", "verify_log"]

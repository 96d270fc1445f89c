"""The one error of offline verification.

    IntegrityError (errors.py, exit 7)
    └── VerificationError         something offline verification checked does not hold; the
        │                         message names what (a file, an event, a signature, a key)
        ├── ProofError            RFC 9162 proof math (merkle)
        ├── NoteError             a C2SP signed note or checkpoint (note)
        ├── EnvelopeError         a DSSE envelope (dsse)
        └── ProofVerificationError  a proof document or an audit bundle (proofs, bundle)
"""

from __future__ import annotations

from ..errors import IntegrityError


class VerificationError(IntegrityError):
    """What was verified does not hold, or cannot be read as what it claims to be."""

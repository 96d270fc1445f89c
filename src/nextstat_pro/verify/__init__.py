"""Offline verification: what a QA reviewer runs on a laptop with the files and nothing else.

No database, no object store, no network, no instance: this package imports the standard
library, ``cryptography``, ``canonical``, ``csvsafe`` and ``errors`` only (``tests/test_verify_offline.py``
holds it to that). What signs lives beside the keys in ``signing``; what builds proofs, in ``audit``.

- ``merkle``: RFC 9162 inclusion and consistency proofs;
- ``note``: C2SP signed notes and tlog checkpoints, the log's verifier key;
- ``dsse``: DSSE envelopes carrying in-toto statements;
- ``proofs``: proof documents from ``audit prove`` and ``audit consistency``;
- ``esignatures``: an electronic signature record against its run;
- ``run_export``: a run folder from ``runs export`` (``nextstat-pro verify``);
- ``bundle``: an audit bundle from ``audit export`` (``audit verify --bundle``).

Every failure is a ``VerificationError`` (an ``IntegrityError``, exit 7) whose message names
what failed.
"""

from .bundle import verify_bundle
from .errors import VerificationError
from .proofs import trusted_key, verify_document
from .run_export import RunVerification, verify_run_folder

__all__ = ["RunVerification", "VerificationError", "trusted_key", "verify_bundle", "verify_document",
           "verify_run_folder"]

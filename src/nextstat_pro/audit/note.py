"""The log's verifier key, where ``instance.py`` imports it from.

Parsing and opening notes and checkpoints is ``verify.note``; signing them, ``signing.notes``.
This module only re-exports ``Verifier`` for ``instance.py``: import from ``verify.note`` instead.
"""

from ..verify.note import Verifier

__all__ = ["Verifier"]

"""The validation pack's content (GAMP 5 style): installation, operational and performance
qualification checks and the traceability matrix, as data (``ValidationPackData``) that the
``validation-pack`` report template renders. Docs: docs/validation-pack.md."""

from .models import Check, QualificationSection, TraceabilityMatrix, TraceRow, ValidationPackData
from .pack import PackOptions, build_validation_pack

__all__ = ["Check", "PackOptions", "QualificationSection", "TraceRow", "TraceabilityMatrix", "ValidationPackData",
           "build_validation_pack"]

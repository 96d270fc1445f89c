"""The one CSV writer of the product: files that people open in spreadsheets, made inert.

A spreadsheet runs a cell that begins with ``=``, ``+``, ``-`` or ``@`` as a formula, and one
that begins with a tab or a carriage return can still become one (OWASP, "CSV Injection"):
``=HYPERLINK(...)`` in a signature reason would send neighbouring cells elsewhere. So:

- such a cell gets a leading apostrophe, which spreadsheets take as "text" and do not show.
  ``defusedcsv`` does this for ``= + - @ | %`` (``|`` inside such a cell becomes ``\\|``, against
  DDE payloads; a plain negative number such as ``-1.5`` is left as it is); it does not know
  tab and carriage return, which are prefixed here before it runs;
- every cell is quoted, so a ``;`` inside a cell cannot start a new cell in the locales whose
  spreadsheets split on ``;``.

The machine-readable forms (the sealed events, JSON/JSONL exports) keep the exact text; a CSV
is a view for people. Every CSV the product writes goes through ``write_csv``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from defusedcsv import csv as defused  # type: ignore[import-untyped]

# Leading characters defusedcsv leaves alone that OWASP lists: tab (0x09), carriage return (0x0D).
_CONTROL_STARTS = ("\t", "\r")


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The CSV text (RFC 4180 line ends) of ``header`` and ``rows``; None is an empty cell."""
    out = io.StringIO()
    writer = defused.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return out.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_CONTROL_STARTS):
        return "'" + value
    return value

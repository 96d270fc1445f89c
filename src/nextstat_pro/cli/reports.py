"""``nextstat-pro report``: run certificates, audit-trail reports and reviews, validation packs."""

from __future__ import annotations

import typer

report_app = typer.Typer(help="Reports: run certificates, audit trails and reviews, validation packs.",
                         no_args_is_help=True)

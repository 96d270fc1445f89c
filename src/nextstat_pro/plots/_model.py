"""What a plot is to its callers (reports, dashboard): a stable name, a title and SVG bytes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plot:
    """One rendered plot. ``name`` is the plot kind ("pulls", "correlation", ...): stable, a
    cache key together with the result digest and ``RENDERER_VERSION``; ``svg`` is a complete
    SVG document without XML prolog (ready to inline into HTML or to serve as a file)."""

    name: str
    title: str
    svg: bytes


@dataclass(frozen=True)
class Prior:
    """A constrained parameter's nominal value and prior width (pulls are measured in it)."""

    centre: float
    width: float

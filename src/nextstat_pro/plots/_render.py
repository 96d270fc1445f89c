"""Drawing a figure and writing it as deterministic, inert SVG.

Determinism: matplotlib's ids (clip paths, markers) are hashes salted with ``svg.hashsalt``,
which is set per plot kind, so two plots inlined into one HTML page do not share ids while
the same plot is byte-identical in every process; no metadata (no date, no creator) is written.
Text is drawn as glyph paths (``svg.fonttype = "path"``) from matplotlib's bundled DejaVu
fonts: the SVG looks the same in every viewer and in WeasyPrint's PDFs, needs no font on
the reader's side and cannot carry markup (data text appears only in XML comments, escaped by
matplotlib). The XML prolog and its DOCTYPE (an external DTD address) are dropped, a
``<title>`` is added for screen readers, and every SVG is checked to be inert before it is
returned (``check_inert``).

matplotlib's rcParams are process-global, so drawing holds a lock: the dashboard may render
from several threads. matplotlib and mplhep are imported on first use (about 2 s)."""

from __future__ import annotations

import io
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from importlib.metadata import version
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from ._model import Plot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RENDERER = "nextstat-pro-plots/1"

_LOCK = threading.Lock()
_SVG_NS = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

# On top of mplhep's ROOT style (the experiment-neutral one): sizes for a report page and
# fonts that ship with matplotlib (the style asks for TeX Gyre Heros, which a machine may lack).
_RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "font.size": 12,
    "axes.linewidth": 1.0,
    "axes.unicode_minus": True,
    "xtick.major.size": 6,
    "xtick.minor.size": 3,
    "ytick.major.size": 6,
    "ytick.minor.size": 3,
    "xaxis.labellocation": "center",
    "yaxis.labellocation": "center",
    "svg.fonttype": "path",
    "svg.id": None,
    "figure.dpi": 72,
    "savefig.transparent": False,
    "figure.facecolor": "white",
}

# Nothing else is cached but the version string: it is part of every plot's cache key.
RENDERER_VERSION = f"{RENDERER} matplotlib/{version('matplotlib')} mplhep/{version('mplhep')}"


def render(name: str, title: str, size: tuple[float, float], draw: Callable[[Figure], None]) -> Plot:
    """Let ``draw`` fill a new figure of ``size`` inches, in the house style; return it as a Plot."""
    import matplotlib
    import matplotlib.style
    import mplhep  # type: ignore[import-untyped]
    from matplotlib.figure import Figure

    rc: Any = {**_RC, "svg.hashsalt": f"{RENDERER}/{name}"}  # Any: matplotlib types its keys as literals
    with _LOCK, matplotlib.style.context(mplhep.style.ROOT), matplotlib.rc_context(rc):
        figure = Figure(figsize=size, layout="constrained")
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return Plot(name, title, finish(buffer.getvalue(), title))


def finish(raw: bytes, title: str) -> bytes:
    """matplotlib's SVG without prolog, with a ``<title>``, checked to be inert."""
    text = raw.decode("utf-8")
    start = text.index("<svg ")
    end = text.index(">", start) + 1
    svg = f'{text[start:end]}\n <title>{escape(title)}</title>{text[end:]}'
    check_inert(svg)
    return svg.encode("utf-8")


# Raster images are refused too: none is drawn (every plot is vector), and WeasyPrint writes
# rasters in a way PDF/A forbids (FACTS: /Interpolate true).
_FORBIDDEN = {"script", "foreignobject", "iframe", "object", "embed", "image", "animate", "set", "a", "handler",
              "listener"}
_CSS_FETCH = re.compile(r"url\(\s*['\"]?\s*(?!#)|@import", re.IGNORECASE)


class UnsafeSVGError(RuntimeError):
    """Rendered SVG that could run script or load something: a bug in the renderer, never shown."""


def check_inert(svg: str) -> None:
    """Raise UnsafeSVGError unless ``svg`` is plain drawing: no script, no foreign content, no
    event handler attributes, no reference outside the document, no DTD or entities."""
    if "<!DOCTYPE" in svg or "<!ENTITY" in svg:
        raise UnsafeSVGError("SVG with a document type declaration")
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise UnsafeSVGError(f"SVG that is not well-formed XML: {exc}") from None
    for element in root.iter():
        tag = element.tag.removeprefix(_SVG_NS) if isinstance(element.tag, str) else ""
        if tag.lower() in _FORBIDDEN:
            raise UnsafeSVGError(f"SVG element <{tag}>")
        if tag == "style" and _CSS_FETCH.search(element.text or ""):
            raise UnsafeSVGError("SVG style sheet that loads something")
        for attribute, value in element.attrib.items():
            local = attribute.rsplit("}", 1)[-1].lower()
            if local.startswith("on"):
                raise UnsafeSVGError(f"SVG event handler attribute {local}")
            if local == "href" and not value.startswith("#"):
                raise UnsafeSVGError(f"SVG reference {value[:40]!r}")
            if _CSS_FETCH.search(value):
                raise UnsafeSVGError(f"SVG external url() in {local}")

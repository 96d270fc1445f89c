"""Report templates: a folder, packed into one content-addressed document, rendered with Jinja2.

**The folder** (built-ins live in ``compliance/templates/<kind>/``; an organisation pushes its own
with ``nextstat-pro hub template push``):

- ``manifest.json``::

      {"name": "run-certificate",            # registry item name (lowercase, digits, . _ -)
       "version": "1.0.0",                   # semantic version: the registry label, immutable
       "kind": "run-certificate",            # one of REPORT_KINDS: which report it renders
       "description": "One line for lists",
       "inputs": ["run", "signatures"],      # names of the data the template reads (documentation,
                                             # checked against the kind's INPUTS: no unknown names)
       "entry": "report.html.j2",            # the Jinja2 page, relative to the folder
       "styles": ["report.css"]}             # CSS files, concatenated in order into ``css``

- the entry template, any partials it ``{% include %}``s (``*.j2``), the CSS, and assets (an SVG or
  PNG logo, ...). Only regular files directly in the folder or its sub-folders; at most 2 MB in all.

**Packed**: ``pack_folder`` turns the folder into RFC 8785 canonical JSON
``{"format": "nextstat-pro.template/1", "manifest": {...}, "files": {"PATH": {"utf8": TEXT} |
{"base64": DATA}}}``; its sha256 is the template's digest, which a report records. The registry
stores that document as a version of kind ``template`` (immutable, aliases, RBAC as for models).

**Rendering** (``render``): autoescaping is on for everything (names, reasons and parameters are
user text), undefined names fail (``StrictUndefined``), and nothing outside the packed files can be
loaded. The page gets:

- ``report``: the header dict (``title``, ``kind``, ``created`` RFC 3339 UTC taken from the data,
  ``template``: ``{name, version, digest}``, ``attachments``: names of the embedded evidence files);
- ``data``: the report's data as JSON values (``model_dump(mode="json")`` of the kind's Pydantic model,
  e.g. H2b's ``ValidationPackData`` for ``validation-pack``);
- ``css``: the concatenated styles, already safe to put inside ``<style>``;
- ``asset(path)``: a ``data:`` URI for a packed file (logos); ``svg(markup)``: trusted SVG markup
  (plots we render ourselves) marked safe;
- filters ``utc`` (an RFC 3339 timestamp as ``2026-12-02 06:51:02 UTC``) and ``short`` (a digest's
  first 19 characters).

A page must set ``<meta name="dcterms.created" content="{{ report.created }}">`` (WeasyPrint takes the
PDF's dates from it, so renders are byte-identical) and ``html { image-rendering: crisp-edges }`` in its
CSS (PDF/A forbids interpolated images). ``load_folder`` checks both.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
from markupsafe import Markup

from ..canonical import canonical_json, digest_of
from ..errors import InputError

FORMAT = "nextstat-pro.template/1"
MEDIA_TYPE = "application/vnd.nextstat-pro.template+json"
REPORT_KINDS = ("run-certificate", "audit-trail", "audit-review", "validation-pack")
# What each kind's data offers a template (the manifest's ``inputs`` must be among these).
INPUTS: dict[str, tuple[str, ...]] = {
    "run-certificate": ("run", "inputs", "engine", "platform", "params", "results", "quality", "plots",
                        "signatures", "verification", "approval", "report_signatures"),
    "audit-trail": ("events", "range", "checkpoint", "filters", "report_signatures"),
    "audit-review": ("events", "groups", "findings", "range", "gaps", "previous", "report_signatures"),
    "validation-pack": ("iq", "oq", "pq", "traceability", "summary", "report_signatures"),
}
MAX_BYTES = 2 * 1024 * 1024
_MANIFEST_KEYS = {"name", "version", "kind", "description", "inputs", "entry", "styles"}


@dataclass(frozen=True)
class Template:
    """A packed template: its manifest, its files (path to bytes) and the digest of the packed document."""

    manifest: dict[str, Any]
    files: dict[str, bytes]
    digest: str

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    def packed(self) -> bytes:
        """The canonical document whose sha256 is ``digest`` (what the registry stores)."""
        return canonical_json(_document(self.manifest, self.files))

    def ref(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "digest": self.digest}


def _document(manifest: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    packed: dict[str, Any] = {}
    for path, data in sorted(files.items()):
        try:
            packed[path] = {"utf8": data.decode("utf-8")}
        except UnicodeDecodeError:
            packed[path] = {"base64": base64.b64encode(data).decode("ascii")}
    return {"format": FORMAT, "manifest": manifest, "files": packed}


def _check_manifest(manifest: Any, files: dict[str, bytes], where: str) -> dict[str, Any]:
    from ..hub.refs import NAME, SEMVER  # the registry's own rules for names and labels

    if not isinstance(manifest, dict):
        raise InputError(f"{where}: manifest.json must be a JSON object")
    missing = sorted(_MANIFEST_KEYS - {"styles"} - manifest.keys())
    if missing:
        raise InputError(f"{where}: manifest.json lacks {', '.join(missing)}")
    unknown = sorted(manifest.keys() - _MANIFEST_KEYS)
    if unknown:
        raise InputError(f"{where}: manifest.json has unknown keys {', '.join(unknown)}")
    if not isinstance(manifest["name"], str) or not NAME.match(manifest["name"]):
        raise InputError(f"{where}: manifest name must be lowercase letters, digits, '.', '_' or '-'")
    if not isinstance(manifest["version"], str) or not SEMVER.match(manifest["version"]):
        raise InputError(f"{where}: manifest version must be a semantic version like 1.0.0")
    if manifest["kind"] not in REPORT_KINDS:
        raise InputError(f"{where}: manifest kind must be one of {', '.join(REPORT_KINDS)}")
    if not isinstance(manifest["description"], str):
        raise InputError(f"{where}: manifest description must be a string")
    inputs = manifest["inputs"]
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise InputError(f"{where}: manifest inputs must be a list of names")
    bad = sorted(set(inputs) - set(INPUTS[manifest["kind"]]))
    if bad:
        raise InputError(f"{where}: a {manifest['kind']} report offers no input {', '.join(bad)} "
                         f"(it offers {', '.join(INPUTS[manifest['kind']])})")
    styles = manifest.get("styles", [])
    if not isinstance(styles, list) or not all(isinstance(s, str) for s in styles):
        raise InputError(f"{where}: manifest styles must be a list of file names")
    for path in [manifest["entry"], *styles]:
        if not isinstance(path, str) or path not in files:
            raise InputError(f"{where}: manifest names {path!r}, which the template does not contain")
    entry = files[manifest["entry"]].decode("utf-8", "replace")
    if "dcterms.created" not in entry:
        raise InputError(f"{where}: the entry page must set <meta name=\"dcterms.created\" "
                         "content=\"{{ report.created }}\"> (PDF dates come from the data)")
    css = b"".join(files[s] for s in styles).decode("utf-8", "replace") + entry
    if "crisp-edges" not in css:
        raise InputError(f"{where}: the styles must set html {{ image-rendering: crisp-edges }} (PDF/A)")
    return {k: manifest[k] for k in sorted(manifest)} | {"styles": list(styles)}


def from_files(files: dict[str, bytes], where: str) -> Template:
    """A template from its folder's files (``manifest.json`` among them), checked."""
    for path in files:
        p = PurePosixPath(path)
        if p.is_absolute() or ".." in p.parts or not path or path != str(p):
            raise InputError(f"{where}: file path {path!r} is not a plain relative path")
    if sum(len(d) for d in files.values()) > MAX_BYTES:
        raise InputError(f"{where}: a template holds at most {MAX_BYTES // 1024 // 1024} MB")
    if "manifest.json" not in files:
        raise InputError(f"{where}: no manifest.json")
    try:
        raw = json.loads(files["manifest.json"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: manifest.json is not JSON: {exc}") from None
    manifest = _check_manifest(raw, files, where)
    body = {p: d for p, d in files.items() if p != "manifest.json"}
    return Template(manifest, body, digest_of(canonical_json(_document(manifest, body))))


def load_folder(folder: Path | Any) -> Template:
    """A template from a folder (a ``Path`` or an ``importlib.resources`` traversable)."""
    files: dict[str, bytes] = {}

    def walk(node: Any, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name.startswith(".") or child.name == "__pycache__":
                continue
            path = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, path + "/")
            elif child.is_file():
                files[path] = child.read_bytes()

    if not folder.is_dir():
        raise InputError(f"{folder}: not a template folder")
    walk(folder, "")
    return from_files(files, str(folder))


def unpack(data: bytes, where: str = "template") -> Template:
    """A template from its packed document (a registry version's bytes)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise InputError(f"{where}: not a packed template: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        raise InputError(f"{where}: not a packed template (format {FORMAT})")
    files: dict[str, bytes] = {}
    for path, entry in doc["files"].items():
        if isinstance(entry, dict) and isinstance(entry.get("utf8"), str):
            files[path] = entry["utf8"].encode("utf-8")
        elif isinstance(entry, dict) and isinstance(entry.get("base64"), str):
            files[path] = base64.b64decode(entry["base64"], validate=True)
        else:
            raise InputError(f"{where}: file {path!r} is neither utf8 nor base64")
    files["manifest.json"] = json.dumps(doc.get("manifest")).encode("utf-8")
    return from_files(files, where)


def builtin_templates() -> list[Template]:
    """The templates shipped in the package (``compliance/templates/<kind>/``), by name."""
    root = resources.files(__package__).joinpath("templates")
    return sorted((load_folder(d) for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))),
                  key=lambda t: t.name)


def builtin(kind: str) -> Template:
    for t in builtin_templates():
        if t.kind == kind and t.name == kind:
            return t
    raise InputError(f"no built-in template for {kind} reports")


def _utc(value: str) -> str:
    # RFC 3339 as stored (2026-12-02T06:51:02.123456+00:00 or ...Z) to a readable UTC time.
    body = value.replace("T", " ")
    for suffix in ("+00:00", "Z"):
        body = body.removesuffix(suffix)
    return body.split(".")[0] + " UTC"


def _short(value: str) -> str:
    return value[:19]


def render(template: Template, report: dict[str, Any], data: dict[str, Any]) -> str:
    """The HTML page: deterministic (no clock, no environment), everything escaped unless a
    template marks it safe (only ``css`` and ``svg(...)``, which we produce)."""
    files = template.files
    sources = {p: d.decode("utf-8") for p, d in files.items() if p.endswith((".j2", ".html"))}
    env = jinja2.Environment(loader=jinja2.DictLoader(sources), autoescape=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["utc"] = _utc
    env.filters["short"] = _short

    def asset(path: str) -> str:
        if path not in files:
            raise InputError(f"template {template.name}@{template.version} has no file {path!r}")
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return f"data:{media};base64,{base64.b64encode(files[path]).decode('ascii')}"

    css = Markup("\n".join(files[s].decode("utf-8") for s in template.manifest["styles"]).replace("</", "<\\/"))
    try:
        page = env.get_template(template.manifest["entry"])
        return page.render(report=report, data=data, css=css, asset=asset, svg=Markup)
    except jinja2.TemplateError as exc:
        raise InputError(f"template {template.name}@{template.version} failed: {exc}") from None

"""``hub model|dataset|patchset ...``: the registry."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import typer
from rich.table import Table

from ..errors import UsageError
from ..hub import likelihood
from ..hub.views import VersionDoc
from .common import JsonOption, ProjectOption, console, options_for, print_model, state

hub_app = typer.Typer(help="NS-Hub: models, datasets and patchsets with immutable versions.", no_args_is_help=True)


def _table(rows: list[VersionDoc]) -> None:
    table = Table("name", "version", "digest", "aliases", "tags", "created (UTC)", "state")
    for r in rows:
        state_ = "purged" if r.purged else "archived" if r.archived else ""
        table.add_row(r.name, r.semver or "", r.digest[:19] + "…", ",".join(r.aliases),
                      " ".join(f"{k}={v}" for k, v in r.tags.items()),
                      r.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), state_)
    console.print(table)


def _done(doc: VersionDoc, as_json: bool, line: str) -> None:
    """A change's output: the version's document as changed (``--json``), or one line."""
    if as_json:
        print_model(doc)
    else:
        console.print(line, markup=False)


def kind_app(kind: str) -> typer.Typer:
    app = typer.Typer(help=f"Registry {kind}s.", no_args_is_help=True)

    if kind != "patchset":
        @app.command("push")
        def push(ctx: typer.Context, name: str, file: Path, version: str | None = typer.Option(None, "--version"),
                 description: str = typer.Option("", "--description"),
                 tag: list[str] = typer.Option([], "--tag", help="key=value (repeatable)"),
                 project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
            """Validate FILE and push it as a new version of NAME (identical content: the existing version)."""
            _push(ctx, kind, name, file, version, description, tag, None, project, as_json)
    else:
        @app.command("push")
        def push_patchset(ctx: typer.Context, name: str, file: Path,
                          base: str = typer.Option(..., "--base", help="The background-only model version (REF)."),
                          version: str | None = typer.Option(None, "--version"),
                          description: str = typer.Option("", "--description"),
                          tag: list[str] = typer.Option([], "--tag"), project: str | None = ProjectOption,
                          as_json: bool = JsonOption) -> None:
            """Push a pyhf patchset linked to its base model version (its digests must match)."""
            _push(ctx, kind, name, file, version, description, tag, base, project, as_json)

    @app.command("import")
    def import_(ctx: typer.Context, manifest: Path,
                batch: int = typer.Option(500, "--batch", help="Versions per transaction."),
                project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
        """Push many versions from a JSON Lines MANIFEST ({"name", "file", "version", "tags", ...} per
        line), a batch per transaction; each version validated and audited as by push."""
        st = state(ctx)
        with console.status("importing…") as status, options_for(batch_size="--batch"):
            report = st.client().import_manifest(st.project(project), kind, manifest, batch,
                                                 lambda r: status.update(f"importing… {r.summary()}"))
        if as_json:
            print_model(report)
            return
        console.print(f"imported {report.summary()}")

    @app.command("list")
    def list_(ctx: typer.Context, tag: list[str] = typer.Option([], "--tag", help="Only versions with key=value."),
              project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
        """Items with their newest version, or (with --tag) every version so tagged."""
        st = state(ctx)
        rows = st.client().list_items(st.project(project), kind, tag)
        print_model(rows) if as_json else _table(rows)

    @app.command("versions")
    def versions(ctx: typer.Context, name: str, project: str | None = ProjectOption,
                 as_json: bool = JsonOption) -> None:
        st = state(ctx)
        rows = st.client().versions(st.project(project), kind, name)
        print_model(rows) if as_json else _table(rows)

    @app.command("show")
    def show(ctx: typer.Context, ref: str,
             runs: bool = typer.Option(False, "--runs", help="List the runs that used it."),
             project: str | None = ProjectOption) -> None:
        """One version's document (JSON): content digest, label, metadata, tags, aliases; --runs adds the runs."""
        st = state(ctx)
        print_model(st.client().show_version(st.project(project), kind, ref, runs))

    @app.command("alias")
    def alias(ctx: typer.Context, ref: str, alias: str, reason: str = typer.Option(..., "--reason"),
              project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
        """Point ALIAS at the version REF names (protected aliases need a project admin)."""
        st = state(ctx)
        doc = st.client().set_alias(st.project(project), kind, ref, alias, reason)
        _done(doc, as_json, f"{alias} → {ref}")

    @app.command("tag")
    def tag(ctx: typer.Context, ref: str, tags: list[str] = typer.Argument(None, help="key=value ..."),
            remove: list[str] = typer.Option([], "--remove", help="Tag key to remove."),
            reason: str = typer.Option(..., "--reason"), project: str | None = ProjectOption,
            as_json: bool = JsonOption) -> None:
        """Add or change key=value tags of the version REF names (--remove KEY drops one)."""
        st = state(ctx)
        doc = st.client().edit_version(st.project(project), kind, ref, reason, tags or [], remove, None)
        _done(doc, as_json, f"tags of {ref} updated")

    @app.command("describe")
    def describe(ctx: typer.Context, ref: str, text: str, reason: str = typer.Option(..., "--reason"),
                 project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
        """Replace the description of the version REF names."""
        st = state(ctx)
        doc = st.client().edit_version(st.project(project), kind, ref, reason, [], [], text)
        _done(doc, as_json, f"description of {ref} updated")

    @app.command("archive")
    def archive(ctx: typer.Context, ref: str, reason: str = typer.Option(..., "--reason"),
                project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
        """Move a version's bytes to the archive (still readable and verifiable)."""
        st = state(ctx)
        doc = st.client().archive_version(st.project(project), kind, ref, reason)
        _done(doc, as_json, f"archived {ref}")

    @app.command("purge")
    def purge(ctx: typer.Context, ref: str, reason: str = typer.Option(..., "--reason"),
              project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
        """Remove a version's bytes when the policy allows (the record and a tombstone stay)."""
        st = state(ctx)
        doc = st.client().purge_version(st.project(project), kind, ref, reason)
        _done(doc, as_json, f"purged {ref}")

    if kind == "model":
        @app.command("diff")
        def diff(ctx: typer.Context, ref_a: str, ref_b: str, project: str | None = ProjectOption,
                 as_json: bool = JsonOption) -> None:
            """What differs between two workspace versions: channels, samples, modifiers, bins, data."""
            st = state(ctx)
            out = st.client().diff_models(st.project(project), ref_a, ref_b)
            if as_json:
                print_model(out)
                return
            console.print(f"{out.a} → {out.b}: " + ("identical" if out.identical else f"{len(out.changes)} change(s)"))
            for c in out.changes:
                console.print(f"  {c.path}: {c.change}"
                              + (f"  {json.dumps(c.a)} → {json.dumps(c.b)}" if c.a or c.b else ""), markup=False)

    return app


def _push(ctx: typer.Context, kind: str, name: str, file: Path, version: str | None, description: str,
          tags: list[str], base: str | None, project: str | None, as_json: bool) -> None:
    st = state(ctx)
    with options_for(base_ref="--base"):
        pushed = st.client().push_file(st.project(project), kind, name, file, version, description, tags, base)
    if as_json:
        print_model(pushed)
        return
    verb = "pushed" if pushed.created else "unchanged: identical content is"
    console.print(f"{verb} {pushed.label} ({pushed.digest})")


for _kind in ("model", "dataset", "patchset"):
    hub_app.add_typer(kind_app(_kind), name=_kind)


@hub_app.command("import-likelihood")
def import_likelihood(ctx: typer.Context, archive: Path,
                      name: str = typer.Option(..., "--name", help="The model's name (and the patchset's)."),
                      version: str = typer.Option(..., "--version", help="The versions' label, e.g. 1.0.0."),
                      description: str | None = typer.Option(None, "--description",
                                                             help="Default: the archive and the file."),
                      tag: list[str] = typer.Option([], "--tag", help="key=value on every version (repeatable)."),
                      max_mb: int = typer.Option(likelihood.MAX_BYTES >> 20, "--max-mb",
                                                 help="Refuse archives larger than this once decompressed."),
                      project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
    """Push a HEPData likelihood archive (.tar.gz, .tar, .zip): its background-only workspace as model
    NAME@VERSION and its patchset(s) linked to it, in one transaction (docs/hub.md)."""
    if max_mb < 1:
        raise UsageError("--max-mb must be at least 1")
    st = state(ctx)
    with options_for(max_bytes="--max-mb"):
        out = st.client().import_likelihood(st.project(project), archive, name, version, description, tuple(tag),
                                            max_mb << 20)
    if as_json:
        print_model(out)
        return
    console.print(f"archive sha256 {out.archive_sha256}")
    for pushed in (out.model, *out.patchsets):
        verb = "pushed" if pushed.created else "unchanged: identical content is"
        patches = f", {len(pushed.patches)} patch(es)" if pushed.patches is not None else ""
        console.print(f"{verb} {pushed.kind} {pushed.label} from {pushed.file}{patches}", markup=False)

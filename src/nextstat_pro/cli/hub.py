"""``hub model|dataset|patchset ...``: the registry."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..engine import InputFile
from ..errors import UsageError
from ..hub import imports, likelihood, retention, service
from .common import JsonOption, ProjectOption, console, print_json, state

hub_app = typer.Typer(help="NS-Hub: models, datasets and patchsets with immutable versions.", no_args_is_help=True)


def _table(rows: list[dict]) -> None:  # type: ignore[type-arg]
    table = Table("name", "version", "digest", "aliases", "tags", "created (UTC)", "state")
    for r in rows:
        state_ = "purged" if r["purged"] else "archived" if r["archived"] else ""
        table.add_row(r["name"], r["semver"] or "", r["digest"][:19] + "…", ",".join(r["aliases"]),
                      " ".join(f"{k}={v}" for k, v in r["tags"].items()), r["created_at"][:19], state_)
    console.print(table)


def kind_app(kind: str) -> typer.Typer:
    app = typer.Typer(help=f"Registry {kind}s.", no_args_is_help=True)

    if kind != "patchset":
        @app.command("push")
        def push(ctx: typer.Context, name: str, file: Path, version: str | None = typer.Option(None, "--version"),
                 description: str = typer.Option("", "--description"),
                 tag: list[str] = typer.Option([], "--tag", help="key=value (repeatable)"),
                 project: str | None = ProjectOption) -> None:
            """Validate FILE and push it as a new version of NAME (identical content: the existing version)."""
            _push(ctx, kind, name, file, version, description, tag, None, project)
    else:
        @app.command("push")
        def push_patchset(ctx: typer.Context, name: str, file: Path,
                          base: str = typer.Option(..., "--base", help="The background-only model version (REF)."),
                          version: str | None = typer.Option(None, "--version"),
                          description: str = typer.Option("", "--description"),
                          tag: list[str] = typer.Option([], "--tag"), project: str | None = ProjectOption) -> None:
            """Push a pyhf patchset linked to its base model version (its digests must match)."""
            _push(ctx, kind, name, file, version, description, tag, base, project)

    @app.command("import")
    def import_(ctx: typer.Context, manifest: Path,
                batch: int = typer.Option(500, "--batch", help="Versions per transaction."),
                project: str | None = ProjectOption) -> None:
        """Push many versions from a JSON Lines MANIFEST ({"name", "file", "version", "tags", ...} per
        line), a batch per transaction; each version validated and audited as by push."""
        st = state(ctx)
        with console.status("importing…") as status:
            report = imports.import_manifest(st.instance(), st.context(), st.project(project), kind, manifest, batch,
                                             progress=lambda r: status.update(f"importing… {r.summary()}"))
        console.print(f"imported {report.summary()}")

    @app.command("list")
    def list_(ctx: typer.Context, tag: list[str] = typer.Option([], "--tag", help="Only versions with key=value."),
              project: str | None = ProjectOption, as_json: bool = JsonOption) -> None:
        """Items with their newest version, or (with --tag) every version so tagged."""
        st = state(ctx)
        rows = service.list_items(st.instance(), st.context(), st.project(project), kind, tag)
        print_json(rows) if as_json else _table(rows)

    @app.command("versions")
    def versions(ctx: typer.Context, name: str, project: str | None = ProjectOption,
                 as_json: bool = JsonOption) -> None:
        st = state(ctx)
        rows = service.versions(st.instance(), st.context(), st.project(project), kind, name)
        print_json(rows) if as_json else _table(rows)

    @app.command("show")
    def show(ctx: typer.Context, ref: str,
             runs: bool = typer.Option(False, "--runs", help="List the runs that used it."),
             project: str | None = ProjectOption) -> None:
        st = state(ctx)
        print_json(service.show(st.instance(), st.context(), st.project(project), kind, ref, runs))

    @app.command("alias")
    def alias(ctx: typer.Context, ref: str, alias: str, reason: str = typer.Option(..., "--reason"),
              project: str | None = ProjectOption) -> None:
        """Point ALIAS at the version REF names (protected aliases need a project admin)."""
        st = state(ctx)
        service.set_alias(st.instance(), st.context(), st.project(project), kind, ref, alias, reason)
        console.print(f"{alias} → {ref}")

    @app.command("tag")
    def tag(ctx: typer.Context, ref: str, tags: list[str] = typer.Argument(None, help="key=value ..."),
            remove: list[str] = typer.Option([], "--remove", help="Tag key to remove."),
            reason: str = typer.Option(..., "--reason"), project: str | None = ProjectOption) -> None:
        st = state(ctx)
        service.edit(st.instance(), st.context(), st.project(project), kind, ref, reason, tags or [], remove)
        console.print(f"tags of {ref} updated")

    @app.command("describe")
    def describe(ctx: typer.Context, ref: str, text: str, reason: str = typer.Option(..., "--reason"),
                 project: str | None = ProjectOption) -> None:
        st = state(ctx)
        service.edit(st.instance(), st.context(), st.project(project), kind, ref, reason, description=text)
        console.print(f"description of {ref} updated")

    @app.command("archive")
    def archive(ctx: typer.Context, ref: str, reason: str = typer.Option(..., "--reason"),
                project: str | None = ProjectOption) -> None:
        """Move a version's bytes to the archive (still readable and verifiable)."""
        st = state(ctx)
        retention.archive(st.instance(), st.context(), st.project(project), kind, ref, reason)
        console.print(f"archived {ref}")

    @app.command("purge")
    def purge(ctx: typer.Context, ref: str, reason: str = typer.Option(..., "--reason"),
              project: str | None = ProjectOption) -> None:
        """Remove a version's bytes when the policy allows (the record and a tombstone stay)."""
        st = state(ctx)
        retention.purge(st.instance(), st.context(), st.project(project), kind, ref, reason)
        console.print(f"purged {ref}")

    if kind == "model":
        @app.command("diff")
        def diff(ctx: typer.Context, ref_a: str, ref_b: str, project: str | None = ProjectOption,
                 as_json: bool = JsonOption) -> None:
            """What differs between two workspace versions: channels, samples, modifiers, bins, data."""
            st = state(ctx)
            out = service.diff_models(st.instance(), st.context(), st.project(project), ref_a, ref_b)
            if as_json:
                print_json(out)
                return
            console.print(f"{out['a']} → {out['b']}: " + ("identical" if out["identical"] else
                                                          f"{len(out['changes'])} change(s)"))
            for c in out["changes"]:
                console.print(f"  {c['path']}: {c['change']}"
                              + (f"  {json.dumps(c['a'])} → {json.dumps(c['b'])}" if c["a"] or c["b"] else ""),
                              markup=False)

    return app


def _push(ctx: typer.Context, kind: str, name: str, file: Path, version: str | None, description: str,
          tags: list[str], base: str | None, project: str | None) -> None:
    st = state(ctx)
    role = {"model": "workspace", "dataset": "dataset", "patchset": "patchset"}[kind]
    resolved, created = service.push(st.instance(), st.context(), st.project(project), kind, name,
                                     InputFile.read(role, file), version, description, tags, base)
    verb = "pushed" if created else "unchanged: identical content is"
    console.print(f"{verb} {resolved.label} ({resolved.version.digest})")


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
    out = likelihood.import_likelihood(st.instance(), st.context(), st.project(project), archive, name, version,
                                       description, tuple(tag), max_mb << 20)
    if as_json:
        print_json(out.doc())
        return
    console.print(f"archive sha256 {out.archive_sha256}")
    for pushed in (out.model, *out.patchsets):
        verb = "pushed" if pushed.created else "unchanged: identical content is"
        patches = f", {len(pushed.resolved.version.meta['patches'])} patch(es)" if pushed.kind == "patchset" else ""
        console.print(f"{verb} {pushed.kind} {pushed.resolved.label} from {pushed.member}{patches}", markup=False)

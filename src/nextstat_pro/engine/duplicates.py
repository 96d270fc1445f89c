"""Names a workspace may not reuse: what pyhf 0.7.6 refuses to build a model from, and no more.

The pyhf schema allows any name twice; pyhf's model building then decides (``pdf.py``,
``mixins.py``, ``modifiers/*.py``, ``parameters/utils.py``). It keys channels and samples by name,
so a later channel of the same name adds its samples to the earlier one and a later sample of
the same name in a channel replaces the earlier one, and it keys parameters by modifier name.
What that refuses, and we refuse with it (tests/test_workspace_duplicates.py runs pyhf on each):

  - a parameter configured twice in one measurement ("Multiple parameter configurations");
  - a ``shapesys`` name used more than once anywhere (its builder is not shared: "other
    paramsets exist with the same name"), a duplicated channel that has one included;
  - a sample whose bin count differs from its channel's where channel or sample names repeat
    (the merged channel takes its bin count from the last channel of that name);
  - a modifier found only on samples that a later sample of the same name replaces (pyhf lists
    its parameter, then finds nothing to build it from);
  - one name for modifiers of different parameter kinds (``InvalidNameReuse``): normfactor,
    shapefactor, staterror, shapesys and lumi each stand alone; normsys and histosys share one
    kind (one nuisance parameter moving both, as HistFactory correlates them);
  - a staterror name on samples that span different channels (pyhf's per-bin masks must agree).

What pyhf accepts stays accepted, though it may surprise: the same modifier twice on one sample
(the last counts), a shared modifier on several samples or channels, two channels of one name
and equal bin counts (merged), two observations or measurements of one name.
"""

from __future__ import annotations

from typing import Any

from ..errors import DuplicateNameError

# Modifier types whose parameters pyhf builds alike: one name may serve types of one kind only.
_KIND = {"normfactor": "normfactor", "shapefactor": "shapefactor", "staterror": "staterror",
         "shapesys": "shapesys", "lumi": "lumi", "normsys": "normsys/histosys", "histosys": "normsys/histosys"}


def check_names(workspace: dict[str, Any], what: str) -> None:
    """Refuse ``workspace`` (schema-valid already) where pyhf would refuse its names; one line,
    naming the channel, sample or modifier."""
    for measurement in workspace["measurements"]:
        seen: set[str] = set()
        for parameter in measurement["config"]["parameters"]:
            if parameter["name"] in seen:
                raise DuplicateNameError(f"{what}: measurement {measurement['name']!r} configures parameter "
                                         f"{parameter['name']!r} twice")
            seen.add(parameter["name"])

    # pyhf's view: the surviving (last) sample of each name per channel, with its modifiers by
    # (type, name), the last of equal keys counting.
    surviving: dict[str, dict[str, tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]]] = {}
    nbins: dict[str, int] = {}
    repeated: set[str] = set()  # channels where a channel or sample name repeats
    first_place: dict[tuple[str, str], tuple[str, str]] = {}  # (type, name) -> (channel, sample)
    keys_seen: set[tuple[str, str]] = set()
    for channel in workspace["channels"]:
        cname = channel["name"]
        if cname in nbins:
            repeated.add(cname)
        nbins[cname] = len(channel["samples"][0]["data"])
        for sample in channel["samples"]:
            sname = sample["name"]
            modifiers: dict[tuple[str, str], dict[str, Any]] = {}
            for modifier in sample["modifiers"]:
                key = (modifier["type"], modifier["name"])
                if key[0] == "shapesys" and (key in keys_seen or key in modifiers):
                    raise DuplicateNameError(
                        f"{what}: shapesys modifier {key[1]!r} appears again on sample {sname!r} of channel "
                        f"{cname!r}; a shapesys name may be used once (pyhf refuses a second)")
                modifiers[key] = modifier
                first_place.setdefault(key, (cname, sname))
            if sname in surviving.setdefault(cname, {}):
                repeated.add(cname)
            surviving[cname][sname] = (sample, modifiers)
            keys_seen.update(modifiers)

    for cname in sorted(repeated):
        for sname, (sample, _) in surviving[cname].items():
            if len(sample["data"]) != nbins[cname]:
                raise DuplicateNameError(
                    f"{what}: channel {cname!r} (its name or a sample's repeats) has {nbins[cname]} bins, its "
                    f"sample {sname!r} {len(sample['data'])}")

    built = {key for samples in surviving.values() for _, modifiers in samples.values() for key in modifiers}
    built_names = {name for _, name in built}
    for key, (cname, sname) in first_place.items():
        # A staterror's parameter is made per (type, name); the others' per name.
        missing = key not in built if key[0] == "staterror" else key[1] not in built_names
        if missing:
            raise DuplicateNameError(
                f"{what}: {key[0]} modifier {key[1]!r} is only on sample {sname!r} of channel {cname!r}, which "
                "a later sample of the same name replaces")

    kinds: dict[str, tuple[str, str]] = {}
    for mtype, name in sorted(built):
        kind = _KIND.get(mtype, mtype)
        if name in kinds and kinds[name][0] != kind:
            raise DuplicateNameError(
                f"{what}: modifier name {name!r} is used by a {kinds[name][1]} and a {mtype} modifier; one name "
                "serves one kind of parameter (only normsys and histosys may share it)")
        kinds.setdefault(name, (kind, mtype))

    staterror_channels: dict[str, dict[str, set[str]]] = {}  # name -> sample -> channels
    for cname, samples in surviving.items():
        for sname, (_, modifiers) in samples.items():
            for mtype, name in modifiers:
                if mtype == "staterror":
                    staterror_channels.setdefault(name, {}).setdefault(sname, set()).add(cname)
    for name, by_sample in staterror_channels.items():
        spans = {frozenset(channels) for channels in by_sample.values()}
        if len(spans) > 1:
            shown = "; ".join(f"{s!r} in {', '.join(sorted(c))}" for s, c in sorted(by_sample.items()))
            raise DuplicateNameError(
                f"{what}: staterror {name!r} is on samples over different channels ({shown}); name a "
                "staterror per channel, or give it to the same samples in each")

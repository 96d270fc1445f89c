"""A semantic diff of two HistFactory workspaces: channels, samples, modifiers, bins, data."""

from __future__ import annotations

from typing import Any


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in items}


def _modifier_key(m: dict[str, Any]) -> str:
    return f"{m['type']}:{m['name']}"


def workspace_diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Differences from ``a`` to ``b``, one entry each: ``{"path", "change", "a", "b"}``."""
    out: list[dict[str, Any]] = []

    def add(path: str, change: str, old: Any = None, new: Any = None) -> None:
        out.append({"path": path, "change": change, "a": old, "b": new})

    ca, cb = _by_name(a["channels"]), _by_name(b["channels"])
    for name in sorted(ca.keys() - cb.keys()):
        add(f"channel {name}", "removed")
    for name in sorted(cb.keys() - ca.keys()):
        add(f"channel {name}", "added", None, f"{len(cb[name]['samples'][0]['data'])} bins")
    for ch in sorted(ca.keys() & cb.keys()):
        sa, sb = _by_name(ca[ch]["samples"]), _by_name(cb[ch]["samples"])
        for s in sorted(sa.keys() - sb.keys()):
            add(f"{ch}/{s}", "sample removed")
        for s in sorted(sb.keys() - sa.keys()):
            add(f"{ch}/{s}", "sample added")
        for s in sorted(sa.keys() & sb.keys()):
            da, db = sa[s]["data"], sb[s]["data"]
            if len(da) != len(db):
                add(f"{ch}/{s}", "bins changed", len(da), len(db))
            else:
                changed = [i for i, (x, y) in enumerate(zip(da, db, strict=True)) if x != y]
                if changed:
                    add(f"{ch}/{s}/data", f"{len(changed)} bin(s) changed",
                        [da[i] for i in changed[:5]], [db[i] for i in changed[:5]])
            ma = {_modifier_key(m): m for m in sa[s]["modifiers"]}
            mb = {_modifier_key(m): m for m in sb[s]["modifiers"]}
            for k in sorted(ma.keys() - mb.keys()):
                add(f"{ch}/{s}/modifier {k}", "removed")
            for k in sorted(mb.keys() - ma.keys()):
                add(f"{ch}/{s}/modifier {k}", "added")
            for k in sorted(ma.keys() & mb.keys()):
                if ma[k].get("data") != mb[k].get("data"):
                    add(f"{ch}/{s}/modifier {k}", "data changed", ma[k].get("data"), mb[k].get("data"))
    oa, ob = _by_name(a.get("observations", [])), _by_name(b.get("observations", []))
    for ch in sorted(oa.keys() | ob.keys()):
        if oa.get(ch, {}).get("data") != ob.get(ch, {}).get("data"):
            add(f"observations {ch}", "data changed", oa.get(ch, {}).get("data"), ob.get(ch, {}).get("data"))
    ma, mb = _by_name(a.get("measurements", [])), _by_name(b.get("measurements", []))
    for m in sorted(ma.keys() | mb.keys()):
        if ma.get(m) != mb.get(m):
            add(f"measurement {m}", "changed" if m in ma and m in mb else ("added" if m in mb else "removed"),
                ma.get(m, {}).get("config"), mb.get(m, {}).get("config"))
    return out

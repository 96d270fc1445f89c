"""Example inputs generated from a seed (demo and tests)."""

from __future__ import annotations

import json
from pathlib import Path

from .generate import histfactory_workspace, pk_dataset, signal_patchset

__all__ = ["histfactory_workspace", "pk_dataset", "signal_patchset", "write_examples"]


def write_examples(folder: Path, n_signal_points: int = 125) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    workspace = histfactory_workspace()
    paths = {
        "workspace": folder / "example_workspace.json",
        "patchset": folder / "example_signal_patchset.json",
        "dataset": folder / "example_pk.csv",
    }
    paths["workspace"].write_text(json.dumps(workspace, indent=1))
    paths["patchset"].write_text(json.dumps(signal_patchset(workspace, n_signal_points), indent=1))
    paths["dataset"].write_text(pk_dataset())
    return paths

"""A copy of the repository with a tiny profile and fast stand-in notebooks,
for the tests of running, resuming and inspecting a sweep."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# degen is imported inside the functions, so that collecting the other
# tests does not depend on the sweep modules.

REPO = Path(__file__).resolve().parents[1]

# Two ensembles of two 8-unit networks, trained for a few steps.
TINY_PROFILE = """\
description: sweep plumbing tests
device: cpu
n_networks: 2
seed: 0
model: {n_hidden: 8}
train: {lr: 0.01, batch_size: 8, steps_per_epoch: 4, max_epochs: 2, patience: 1}
eval: {n_trials: 4}
dynamics: {n_delays: 2, rank: 4, n_iters: 5, n_restarts: 0}
tasks:
  flipflop:
    config: {n_steps: 10, p_switch: 0.1, threshold: 0.9}
    complexity: [1, 2]
"""

# Stands in for every notebook: starts in about a second, stays mid-run for
# half a second, and prints what it read from the store (the same store
# gives the same text).
STAND_IN = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "default"
task = ""
factor = ""

# %%
import json
import os
import pathlib
import time

time.sleep(0.5)

# %%
store = pathlib.Path(os.environ["DEGEN_RESULTS"])
metas = sorted(store.glob("ensemble/*/*/meta.json"))
files = [json.loads(p.read_text())["files"] for p in metas]
sums = sorted(f["tensors.safetensors"]["sha256"][:12] for f in files)
print(profile, task, factor, sums)
"""


def make_repo(path: Path, stand_ins: bool = True) -> Path:
    """A repository at ``path`` with degen, the profiles and sweeps/tiny.yaml;
    the notebooks are the real ones or (``stand_ins``) :data:`STAND_IN`."""
    from degen.profile import load_profile
    from degen.sweep import notebook_jobs

    path.mkdir(parents=True)
    ignore = shutil.ignore_patterns("generated", "__pycache__")
    for name in ("degen", "sweeps", "notebooks", "book"):
        shutil.copytree(REPO / name, path / name, ignore=ignore)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, path / name)
    (path / "sweeps" / "tiny.yaml").write_text(TINY_PROFILE)
    if stand_ins:
        sources = {p.name for p in (REPO / "notebooks").glob("*.py")}
        for profile in ("tiny", "smoke"):
            prof = load_profile(path / "sweeps" / f"{profile}.yaml")
            sources |= {job.source.name for job in notebook_jobs(prof, path)}
        for name in sources:
            (path / "notebooks" / name).write_text(STAND_IN)
    return path


@pytest.fixture
def tiny_repo(tmp_path, monkeypatch) -> Path:
    """A repository with stand-in notebooks, as the working directory."""
    root = make_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    # run() hands the store and device to the notebook kernels through the
    # environment; keep that out of the other tests.
    monkeypatch.delenv("DEGEN_RESULTS", raising=False)
    monkeypatch.setenv("DEGEN_DEVICE", "cpu")
    return root


def degen_command(
    repo: Path, *args: str, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m degen ARGS`` in ``repo`` (importing the repo's degen)."""
    full_env = {**os.environ, "DEGEN_DEVICE": "cpu", **(env or {})}
    full_env.pop("DEGEN_RESULTS", None)
    return subprocess.run(
        [sys.executable, "-m", "degen", *args],
        cwd=repo,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def store_contents(root: Path) -> dict[tuple[str, str], dict[str, str]]:
    """(kind, key) -> the checksums of its files, for every valid entry; fails
    if an entry is not valid."""
    from degen.store import Store

    store = Store(root)
    contents = {}
    for meta in sorted(root.glob("*/??/*/meta.json")):
        kind, key = meta.parts[-4], meta.parts[-2]
        assert store.state(kind, key)[0] == "done", (kind, key)
        files = json.loads(meta.read_text())["files"]
        contents[kind, key] = {name: f["sha256"] for name, f in files.items()}
    return contents


def notebook_texts(folder: Path) -> dict[str, list[str]]:
    """Name -> the printed output of each code cell of every executed notebook."""
    import nbformat

    texts = {}
    for path in sorted(folder.glob("*.ipynb")):
        if path.name.startswith("."):  # a partial output, not an executed one
            continue
        nb = nbformat.read(path, as_version=4)
        texts[path.name] = [
            "".join(out.get("text", "") for out in cell.get("outputs", []))
            for cell in nb.cells
            if cell.cell_type == "code"
        ]
    return texts

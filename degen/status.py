"""How far a profile's sweep has got, read from the store and book/generated.

Nothing is trained, executed, moved or written: each ensemble is looked up in
the store (done, running while another process holds its lock, missing, or
failed when its entry is corrupt) and each notebook's output in
``book/generated/`` (done, running, missing, or failed when it holds an
error), grouped by task and factor.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from degen import experiment
from degen.profile import Profile, load_profile
from degen.store import Store
from degen.sweep import (
    NOTEBOOK_STATES,
    notebook_digests,
    notebook_jobs,
    notebook_state,
    profile_source,
    root_or_error,
)


@dataclass(frozen=True)
class Item:
    """One ensemble or notebook of a profile, and how far it has got."""

    task: str | None  # None: the notebooks of the whole profile
    factor: str | None  # None: the task's own notebook
    what: str  # "ensemble n_bits=2", "notebook behavior_flipflop_complexity"
    state: str  # one of NOTEBOOK_STATES
    reason: str


def profile_status(
    profile_name: str | os.PathLike,
    root: Path | None = None,
    store: Store | None = None,
) -> list[Item]:
    """Every ensemble and notebook of the profile with its state."""
    profile = load_profile(profile_name)
    root = root or root_or_error()
    store = store or experiment.default_store()
    items = _ensembles(profile, store)
    jobs = notebook_jobs(profile, root, profile_source(profile_name))
    present = [job for job in jobs if job.source.is_file()]
    digests = notebook_digests(present, profile, root, store)
    for job in jobs:
        if job in present:
            state, reason = notebook_state(job, digests[job.output])
        else:
            state, reason = "missing", f"its source {job.source} does not exist"
        task = job.parameters.get("task")
        factor = job.parameters.get("factor")
        if task is None and job.source.stem in profile.tasks:
            task = job.source.stem
        items.append(Item(task, factor, f"notebook {job.output.stem}", state, reason))
    return items


def _ensembles(profile: Profile, store: Store) -> list[Item]:
    items = []
    for task in profile.tasks:
        for factor, spec in profile.factors(task).items():
            conds = experiment.conditions(profile, task, factor)
            for value, cond in zip(spec.values, conds, strict=True):
                key = store.key("ensemble", cond.to_dict())
                state, reason = store.state("ensemble", key)
                if state == "corrupt":
                    # the next sweep moves it aside and trains it again
                    state, reason = "failed", f"corrupt entry: {reason}"
                what = f"ensemble {spec.name}={value}"
                items.append(Item(task, factor, what, state, reason))
    return items


def format_status(items: list[Item], header: str = "") -> str:
    """A plain-text report: one block per task and factor, then totals."""
    lines = [header] if header else []
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        groups.setdefault((item.task, item.factor), []).append(item)
    width = max((len(item.what) for item in items), default=0)
    for (task, factor), members in groups.items():
        if task is None:
            title = "the whole profile"
        elif factor is None:
            title = task
        else:
            title = f"{task}, factor {factor}"
        lines.append(title)
        for item in members:
            reason = "" if item.state == "done" else f"  {item.reason}"
            lines.append(f"  {item.state:<8} {item.what:<{width}}{reason}".rstrip())
    counts = Counter(item.state for item in items)
    lines.append(", ".join(f"{counts[s]} {s}" for s in NOTEBOOK_STATES))
    return "\n".join(lines)

"""A sweep killed with SIGKILL at any point and started again finishes with
the results of an uninterrupted run, and rewrites nothing it had finished.

The kills are deterministic: ``DEGEN_KILL_AT`` (see degen.killpoints) makes
``degen sweep`` kill itself at a named point.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import degen_command, make_repo, notebook_texts, store_contents

from degen import killpoints, status
from degen.config import ConfigError
from degen.store import Store


def _stats(paths) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def _entry_files(store: Path) -> list[Path]:
    return sorted(p for p in store.glob("*/??/*/*") if p.is_file())


def _executed(folder: Path) -> list[Path]:
    # pathlib's "*" matches hidden names too, the partial outputs among them
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def _tmp_folders(store: Path) -> list[Path]:
    return sorted(store.glob("ensemble/.tmp/*"))


def _killed(repo: Path, point: str) -> None:
    proc = degen_command(
        repo, "sweep", "--profile", "tiny", "--quiet", env={"DEGEN_KILL_AT": point}
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


@pytest.mark.slow
def test_a_sweep_killed_anywhere_resumes_to_the_uninterrupted_results(
    tmp_path, monkeypatch
):
    reference = make_repo(tmp_path / "reference")
    proc = degen_command(reference, "sweep", "--profile", "tiny", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    repo = make_repo(tmp_path / "repo")
    results, generated = repo / "results", repo / "book" / "generated"

    # after training the second ensemble, before anything of it is written
    _killed(repo, "compute:2")
    (first,) = store_contents(results)
    finished = _stats(_entry_files(results))
    assert len(finished) == 3 and _tmp_folders(results) == []

    # half way through writing it: a temporary folder without meta.json
    _killed(repo, "write")
    (half,) = _tmp_folders(results)
    assert sorted(os.listdir(half)) == ["tensors.safetensors"]
    assert list(store_contents(results)) == [first]

    # its temporary folder complete, not yet renamed into place; the
    # half-written one was removed by this run
    _killed(repo, "publish")
    (whole,) = _tmp_folders(results)
    assert whole != half and (whole / "meta.json").is_file()
    assert list(store_contents(results)) == [first]

    # during the second notebook: its partial output is hidden
    _killed(repo, "notebook:2")
    assert _tmp_folders(results) == []
    assert len(store_contents(results)) == 2
    (done,) = _executed(generated)
    (partial,) = generated.glob(".*.partial-*.ipynb")
    finished.update(_stats([done]))
    monkeypatch.chdir(repo)
    monkeypatch.delenv("DEGEN_RESULTS", raising=False)
    states = {
        item.what: (item.state, item.reason)
        for item in status.profile_status("tiny", repo, Store(results))
    }
    assert states.pop(f"notebook {done.stem}") == ("done", "executed")
    stem = partial.name.split(".partial-")[0].removeprefix(".")
    assert states.pop(f"notebook {stem}")[1].startswith("interrupted")
    assert {w: s for w, (s, _) in states.items() if w.startswith("ensemble")} == {
        "ensemble n_bits=1": "done",
        "ensemble n_bits=2": "done",
    }
    assert {s for w, (s, _) in states.items() if w.startswith("notebook")} == {
        "missing"
    }

    proc = degen_command(repo, "sweep", "--profile", "tiny", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CorruptEntryWarning" not in proc.stderr
    assert store_contents(results) == store_contents(reference / "results")
    assert not (results / "ensemble" / ".corrupt").exists()
    assert _tmp_folders(results) == [] and list(generated.glob(".*.ipynb")) == []
    assert notebook_texts(generated) == notebook_texts(reference / "book" / "generated")
    assert _stats(finished) == finished  # nothing finished was rewritten
    items = status.profile_status("tiny", repo, Store(results))
    assert {item.state for item in items} == {"done"}


def test_leftovers_of_a_killed_run_are_redone_then_nothing_is(tiny_repo):
    from degen import sweep

    generated = tiny_repo / "book" / "generated"
    generated.mkdir(parents=True)
    # a partial output, as a run killed during a notebook leaves it, and a
    # half-written output, as an older papermill-to-output run left it
    partial = generated / ".flipflop.partial-99999.ipynb"
    partial.write_text('{"cells": [')
    (generated / "summary.ipynb").write_text('{"cells": [')
    outputs = sweep.run("tiny", progress=False)
    assert not partial.exists()
    assert _executed(generated) == sorted(outputs)
    items = status.profile_status("tiny", tiny_repo, Store(tiny_repo / "results"))
    assert {item.state for item in items} == {"done"}

    before = _stats([*outputs, *_entry_files(tiny_repo / "results")])
    assert sweep.run("tiny", progress=False) == outputs
    assert _stats(before) == before


@pytest.mark.parametrize(
    "spec, point, count",
    [("write", "write", 1), ("notebook:3", "notebook", 3)],
)
def test_kill_point_is_read_once_and_removed(spec, point, count):
    env = {killpoints.VARIABLE: spec}
    killpoints.arm(env)
    try:
        assert env == {}  # not inherited by the processes a sweep starts
        assert killpoints.armed(point)
        assert killpoints._remaining == {point: count}
    finally:
        killpoints.arm({})
    assert not killpoints.armed(point)


@pytest.mark.parametrize("spec", ["training", "write:0", "write:x", ":2"])
def test_a_bad_kill_point_is_refused_naming_the_valid_ones(spec):
    with pytest.raises(ConfigError, match=r"DEGEN_KILL_AT = .*compute.*notebook"):
        killpoints.arm({killpoints.VARIABLE: spec})
    assert not any(killpoints.armed(p) for p in killpoints.POINTS)

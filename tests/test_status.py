"""``degen status``: what a profile's sweep has done, read without doing any."""

from __future__ import annotations

import pytest

from degen import cli, experiment, status, sweep
from degen.profile import load_profile
from degen.store import Store, file_lock


def _truncate(folder):
    path = folder / "tensors.safetensors"
    path.write_bytes(path.read_bytes()[:-10])


def _files(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def half_done(tiny_repo, monkeypatch):
    """The tiny profile with an ensemble done, one corrupt, and notebooks
    done, outdated, failed, interrupted and never run."""
    profile = load_profile("tiny")
    store = Store(tiny_repo / "results")
    monkeypatch.setenv("DEGEN_RESULTS", str(store.root))
    first, second = experiment.conditions(profile, "flipflop")
    experiment.get_trained(first, store, "cpu")
    _truncate(store.path("ensemble", experiment.get_trained(second, store, "cpu").key))
    jobs = {
        job.output.stem: job for job in sweep.notebook_jobs(profile, tiny_repo, "tiny")
    }
    digests = sweep.notebook_digests(list(jobs.values()), profile, tiny_repo, store)
    done = jobs["flipflop"]
    sweep.execute_notebook(done, tiny_repo, digests[done.output])
    sweep.execute_notebook(jobs["behavior_flipflop_complexity"], tiny_repo, "older")
    failing = jobs["dynamics_flipflop_complexity"]
    failing.source.write_text(failing.source.read_text() + "\n# %%\n1 / 0\n")
    with pytest.raises(sweep.SweepError, match="ZeroDivisionError"):
        sweep.execute_notebook(failing, tiny_repo, digests[failing.output])
    killed = jobs["weights_flipflop_complexity"]
    killed.output.with_name(f".{killed.output.stem}.partial-1.ipynb").write_text("{")
    return tiny_repo, store, jobs


def test_status_names_each_state_and_changes_nothing(half_done):
    repo, store, jobs = half_done
    before = _files(repo)
    items = status.profile_status("tiny", repo, store)
    got = {item.what: (item.task, item.factor, item.state) for item in items}
    pair = ("flipflop", "complexity")
    expected = {
        "ensemble n_bits=1": (*pair, "done"),
        "ensemble n_bits=2": (*pair, "failed"),
        "notebook flipflop": ("flipflop", None, "done"),
        "notebook behavior_flipflop_complexity": (*pair, "missing"),
        "notebook dynamics_flipflop_complexity": (*pair, "failed"),
        "notebook weights_flipflop_complexity": (*pair, "missing"),
    }
    assert {k: got.pop(k) for k in expected} == expected
    # the profile-wide notebooks (the summary among them) never ran
    assert "notebook summary" in got
    assert set(got.values()) == {(None, None, "missing")}
    reasons = {item.what: item.reason for item in items}
    assert reasons["ensemble n_bits=2"].startswith("corrupt entry: tensors.safe")
    assert reasons["notebook behavior_flipflop_complexity"].startswith("outdated")
    assert "ZeroDivisionError" in reasons["notebook dynamics_flipflop_complexity"]
    assert reasons["notebook weights_flipflop_complexity"].startswith("interrupted")
    assert reasons["notebook summary"] == "not executed yet"
    assert _files(repo) == before  # nothing trained, moved or written


def test_a_held_lock_reads_as_running(half_done):
    repo, store, jobs = half_done
    profile = load_profile("tiny")
    key = store.key("ensemble", experiment.conditions(profile, "flipflop")[1].to_dict())
    summary = jobs["summary"]
    with store._lock("ensemble", key), file_lock(sweep._lock_path(summary), "t"):
        states = {i.what: i.state for i in status.profile_status("tiny", repo, store)}
    assert states["ensemble n_bits=2"] == "running"
    assert states["notebook summary"] == "running"
    states = {i.what: i.state for i in status.profile_status("tiny", repo, store)}
    assert states["ensemble n_bits=2"] == "failed"


def test_the_command_prints_one_block_per_task_and_factor(half_done, capsys):
    repo, store, jobs = half_done
    assert cli.main(["status", "--profile", "tiny"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"profile tiny: results in {store.root}, notebooks in "
        f"{repo / 'book' / 'generated'}"
    )
    assert lines[1] == "flipflop, factor complexity"
    assert lines[2].split() == ["done", "ensemble", "n_bits=1"]
    assert lines[3].split()[:4] == ["failed", "ensemble", "n_bits=2", "corrupt"]
    assert "flipflop" in lines and "the whole profile" in lines
    n = len(jobs) + 2
    assert lines[-1] == f"2 done, 0 running, {n - 4} missing, 2 failed"


def test_an_unknown_profile_is_named(tiny_repo, capsys):
    assert cli.main(["status", "--profile", "nonesuch"]) == 2
    err = capsys.readouterr().err
    assert "nonesuch" in err and "tiny" in err

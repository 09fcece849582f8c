"""The executors: one interface, local processes or Slurm through submitit,
and the same results whichever runs the jobs."""

from __future__ import annotations

import functools
import logging
import math
import operator
import os
from pathlib import Path

import pytest
import shared_entry
from conftest import (
    degen_command,
    make_repo,
    notebook_texts,
    store_contents,
)

from degen import cli, executors, sweep
from degen.config import ConfigError
from degen.executors import (
    JobError,
    LocalExecutor,
    SlurmOptions,
    SubmititExecutor,
    make_executor,
)
from degen.store import Store


@pytest.fixture
def no_slurm(monkeypatch):
    """A machine without Slurm, even where the tests run on one."""
    real = executors.shutil.which
    monkeypatch.setattr(
        executors.shutil,
        "which",
        lambda name, *a, **k: None if name == "sbatch" else real(name, *a, **k),
    )


def _submitit(tmp_path, jobs=1) -> SubmititExecutor:
    return SubmititExecutor(tmp_path / "jobs", SlurmOptions(time_min=5), jobs, False)


# -- choosing an executor -----------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "slurmish"}, r"executor = 'slurmish'; valid executors: \['local'"),
        ({"name": "local", "jobs": 0}, r"jobs = 0 is out of range; valid: \[1, inf\]"),
        ({"name": "local", "jobs": "2"}, r"jobs = '2' has type str; give a whole"),
        (
            {"name": "local", "slurm": SlurmOptions(partition="gpu")},
            r"Slurm options .*partition='gpu'.* executor = 'local'",
        ),
        ({"name": "slurm"}, r"executor = 'slurm' needs a folder"),
    ],
)
def test_a_bad_executor_choice_is_refused_naming_it(kwargs, match):
    name = kwargs.pop("name")
    with pytest.raises(ConfigError, match=match):
        make_executor(name, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"partition": ""}, r"partition = ''; give a partition name"),
        ({"time_min": 0}, r"time_min = 0 is out of range; valid: \[1, inf\]"),
        ({"time_min": 1.5}, r"time_min = 1.5 has type float"),
        ({"gpus": -1}, r"gpus = -1 is out of range"),
        ({"array_parallelism": 0}, r"array_parallelism = 0 is out of range"),
    ],
)
def test_bad_slurm_options_are_refused_naming_them(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SlurmOptions(**kwargs)


def test_the_command_line_refuses_slurm_options_for_the_local_executor(
    tiny_repo, capsys
):
    argv = ["sweep", "--profile", "tiny", "--quiet", "--partition", "gpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "partition='gpu'" in err and "executor = 'local'" in err


def test_the_command_line_hands_the_options_to_the_sweep(tiny_repo, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "run", lambda *a, **k: seen.update(k) or [])
    argv = ["sweep", "--profile", "tiny", "--executor", "slurm", "--jobs", "3"]
    argv += ["--partition", "gpu", "--time", "30", "--gpus", "1"]
    argv += ["--array-parallelism", "4"]
    assert cli.main(argv) == 0
    assert seen["jobs"] == 3
    assert seen["slurm"] == SlurmOptions("gpu", 30, 1, 4)
    assert cli.main(["sweep", "--profile", "tiny"]) == 0
    assert seen["jobs"] == 1 and seen["slurm"] is None


# -- the local executor ---------------------------------------------------------


def test_one_job_at_a_time_runs_in_this_process_and_stops_at_a_failure():
    ran = []

    def job(x):
        ran.append(x)
        return math.sqrt(x)

    executor = LocalExecutor(1, progress=False)
    assert executor.in_process
    assert executor.map(job, [4, 9], "roots") == [2.0, 3.0]
    with pytest.raises(ValueError, match="math domain error"):
        executor.map(job, [1, -1, 4], "roots")
    assert ran == [4, 9, 1, -1]  # the job after the failure never ran


def test_worker_processes_keep_the_order_and_report_every_failure():
    executor = LocalExecutor(2, progress=False)
    assert not executor.in_process
    assert executor.map(operator.neg, [1, 2, 3], "negations") == [-1, -2, -3]
    with pytest.raises(JobError) as err:
        executor.map(math.sqrt, [4, -1, -4], "roots", labels=["a", "b", "c"])
    message = str(err.value)
    assert message.startswith("2 of 3 roots jobs failed")
    assert "- b: math domain error" in message and "- c:" in message
    assert "- a" not in message
    # a lone failure keeps its own type (a notebook's SweepError, say)
    with pytest.raises(ValueError, match="math domain error"):
        executor.map(math.sqrt, [4, -1], "roots")


# -- submitit -------------------------------------------------------------------


def test_without_slurm_submitit_runs_local_processes_and_says_so(
    tmp_path, no_slurm, caplog
):
    with caplog.at_level(logging.WARNING, logger="degen.executors"):
        executor = _submitit(tmp_path, jobs=2)
    assert executor.cluster == "local"
    (record,) = caplog.records
    assert "no Slurm here (sbatch is not on the PATH)" in record.getMessage()
    assert "local processes through submitit, 2 at a time" in record.getMessage()

    assert executor.map(operator.neg, [1, 2, 3], "negations") == [-1, -2, -3]
    assert list((tmp_path / "jobs").iterdir()) == []  # logs of successes removed
    with pytest.raises(JobError) as err:
        executor.map(math.sqrt, [4, -1], "roots", labels=["four", "minus one"])
    message = str(err.value)
    assert message.startswith("1 of 2 roots jobs failed")
    assert "- minus one: job" in message and "math domain error" in message
    (kept,) = (tmp_path / "jobs").iterdir()  # the failed job's logs stay
    assert str(kept) in message


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_jobs_that_need_the_same_entry_compute_it_once(
    tmp_path, no_slurm, monkeypatch, name
):
    # submitit's processes import the job's function from tests/
    path = [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, path)))
    executor = make_executor(name, jobs=2, folder=tmp_path / "jobs", progress=False)
    marker = tmp_path / "marker.txt"
    job = functools.partial(
        shared_entry.compute_once, root=str(tmp_path / "results"), marker=str(marker)
    )
    first, second = executor.map(job, [1, 2], "shared")
    assert len(marker.read_text().splitlines()) == 1
    assert first == second


# -- whole sweeps ---------------------------------------------------------------


@pytest.mark.slow
def test_submitit_gives_the_store_and_notebooks_of_the_local_executor(
    tmp_path, no_slurm, monkeypatch
):
    monkeypatch.delenv("DEGEN_RESULTS", raising=False)
    monkeypatch.setenv("DEGEN_DEVICE", "cpu")
    outputs = {}
    for name, jobs in [("local", 1), ("slurm", 2)]:
        repo = make_repo(tmp_path / name)
        monkeypatch.chdir(repo)
        # run() points the kernels at its store through the environment
        monkeypatch.delenv("DEGEN_RESULTS", raising=False)
        outputs[name] = sweep.run("tiny", executor=name, jobs=jobs, progress=False)
        assert [p.relative_to(repo) for p in outputs[name]] == [
            p.relative_to(tmp_path / "local") for p in outputs["local"]
        ]
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    assert len(store_contents(local / "results")) == 2
    assert store_contents(slurm / "results") == store_contents(local / "results")
    texts = notebook_texts(slurm / "book" / "generated")
    assert texts == notebook_texts(local / "book" / "generated")
    assert len(texts) == len(outputs["local"])
    assert list((slurm / "results" / ".submitit").iterdir()) == []


def _path_without_sbatch() -> str:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if not (Path(d) / "sbatch").exists())


@pytest.mark.slow
def test_the_smoke_profile_runs_through_the_submitit_fallback(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo", stand_ins=False)
    monkeypatch.chdir(repo)  # the profile and code the sweep saw
    monkeypatch.delenv("DEGEN_RESULTS", raising=False)
    proc = degen_command(
        repo,
        *("sweep", "--profile", "smoke", "--quiet", "--executor", "slurm"),
        *("--jobs", "2", "--time", "20"),
        env={"PATH": _path_without_sbatch()},
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no Slurm here (sbatch is not on the PATH)" in proc.stderr
    submitted = store_contents(repo / "results")

    # the same profile trained and measured by the local executor, in this
    # process: the entries the notebooks asked for, the same bytes
    from degen import analysis
    from degen.profile import load_profile

    profile = load_profile(repo / "sweeps" / "smoke.yaml")
    local = Store(tmp_path / "local")
    sweep.train_all(profile, local, "cpu", progress=False)
    for task in profile.tasks:
        for factor in profile.factors(task):
            for level in analysis.LEVELS:
                analysis.measure(profile, task, factor, level, store=local)
    expected = store_contents(local.root)
    ensembles = {k for k in expected if k[0] == "ensemble"}
    assert ensembles == {k for k in submitted if k[0] == "ensemble"}
    assert {k: submitted.get(k) for k in expected} == expected
    from degen.status import profile_status

    items = profile_status("smoke", repo, Store(repo / "results"))
    assert {(i.what, i.state) for i in items if i.state != "done"} == set()

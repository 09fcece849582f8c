"""End to end: the smoke profile from training to a built book, in a copy of
the repository so that the real book/ and results/ are not touched."""

import shutil
import warnings
from pathlib import Path

import nbformat
import pytest
import yaml
from sphinx.util.matching import Matcher

from degen import analysis, cli, experiment, sweep
from degen.config import ConfigError
from degen.model import ModelConfig
from degen.profile import load_profile
from degen.tasks.flipflop import FlipFlopConfig
from degen.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
COPIED = ["_config.yml", "_toc.yml", "book", "notebooks", "sweeps", "degen"]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(
                src,
                root / name,
                ignore=shutil.ignore_patterns("generated", "__pycache__"),
            )
        else:
            shutil.copy(src, root / name)
    monkeypatch.chdir(root)
    # run() hands the store and device to the notebook kernels through the
    # environment; keep that out of the other tests.
    monkeypatch.delenv("DEGEN_RESULTS", raising=False)
    monkeypatch.setenv("DEGEN_DEVICE", "cpu")
    return root


@pytest.mark.slow
def test_smoke_profile_builds_the_book(repo, capsys):
    assert cli.main(["book", "--profile", "smoke", "--quiet"]) == 0
    out = capsys.readouterr().out
    index = repo / "_build" / "html" / "index.html"
    assert str(index) in out
    assert index.is_file()
    generated = sorted(p.name for p in (repo / "book" / "generated").glob("*.ipynb"))
    profile = load_profile("smoke")
    names = [job.output.name for job in sweep.notebook_jobs(profile, repo)]
    assert generated == sorted(names)
    tasks = {"flipflop.ipynb", "sine.ipynb", "delayed.ipynb", "path.ipynb"}
    assert tasks <= set(names)
    assert {"complexity.ipynb", "dynamics_delayed_aux.ipynb"} <= set(names)
    html = repo / "_build" / "html" / "book" / "generated"
    text = (html / "summary.html").read_text()
    for level in ("behavior", "dynamics", "weights"):
        assert level in text
    assert "cells agree with the paper" in text
    assert "agree with the paper" in (html / "complexity.html").read_text()
    for name in names:  # every executed notebook is a page of the book
        assert (html / name).with_suffix(".html").is_file(), name
    # A second run trains nothing new: every ensemble comes from the store.
    entries = sorted((repo / "results" / "ensemble").rglob("meta.json"))
    conditions = {
        repr(entry.condition.to_dict())
        for task in profile.tasks
        for entry in analysis.task_conditions(profile, task)
    }
    assert len(entries) == len(conditions)
    mtimes = [p.stat().st_mtime_ns for p in entries]
    assert sweep.run("smoke", progress=False, notebooks=False) == []
    assert [p.stat().st_mtime_ns for p in entries] == mtimes


def _plant_failure(repo: Path, notebook: str) -> None:
    path = repo / "notebooks" / notebook
    path.write_text(
        path.read_text() + '\n# %%\nraise RuntimeError("planted failure")\n'
    )


def test_a_failing_notebook_stops_the_sweep_and_names_the_cell(repo):
    _plant_failure(repo, "flipflop.py")
    with pytest.raises(sweep.SweepError) as err:
        sweep.run("smoke", progress=False)
    message = str(err.value)
    assert "notebooks/flipflop.py" in message
    assert "cell" in message and "planted failure" in message


def test_book_command_fails_without_building(repo, capsys):
    _plant_failure(repo, "flipflop.py")
    assert cli.main(["book", "--profile", "smoke", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "notebooks/flipflop.py" in err and "planted failure" in err
    assert not (repo / "_build").exists()


def test_error_outputs_left_in_a_notebook_are_caught(repo):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1/0")
    cell.outputs = [
        nbformat.v4.new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero", traceback=[]
        )
    ]
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), cell]
    out = repo / "book" / "generated" / "x.ipynb"
    out.parent.mkdir(parents=True)
    nbformat.write(nb, out)
    job = sweep.NotebookJob(repo / "notebooks" / "x.py", out)
    with pytest.raises(sweep.SweepError, match=r"cell 1: ZeroDivisionError"):
        sweep._check_outputs(job, repo)


def test_bad_profile_and_executor_stop_with_clear_messages(repo, capsys):
    assert cli.main(["sweep", "--profile", "nonesuch", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nonesuch" in err and "smoke" in err and "default" in err
    with pytest.raises(ConfigError, match=r"executor = 'slurmish'.*local"):
        sweep.run("smoke", executor="slurmish", progress=False)


def test_missing_notebook_source_is_named(repo):
    (repo / "notebooks" / "weights.py").unlink()
    with pytest.raises(sweep.SweepError, match=r"weights\.py"):
        sweep.run("smoke", progress=False)


def test_book_build_failure_is_reported(repo):
    (repo / "_toc.yml").write_text(
        (repo / "_toc.yml").read_text() + "      - file: book/nonexistent\n"
    )
    (repo / "book" / "generated").mkdir(parents=True)
    with pytest.raises(sweep.SweepError, match="book build failed"):
        sweep.build_book(repo)


def test_clean_lists_by_default_and_removes_with_yes(repo, capsys):
    for path in ("_build/html", "book/generated", "results/ensemble"):
        (repo / path).mkdir(parents=True)
    assert cli.main(["clean", "--results"]) == 0
    out = capsys.readouterr().out
    for path in ("_build", "book/generated", "results"):
        assert f"would remove {repo / path}" in out
        assert (repo / path).exists()
    assert "pass --yes" in out

    assert cli.main(["clean", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"removed {repo / '_build'}" in out
    assert not (repo / "_build").exists()
    assert not (repo / "book" / "generated").exists()
    assert (repo / "results" / "ensemble").exists()  # only with --results
    assert cli.main(["clean", "--results", "--yes"]) == 0
    assert not (repo / "results").exists()
    assert cli.main(["clean"]) == 0
    assert capsys.readouterr().out.endswith("nothing to remove\n")


def test_the_profile_device_is_used_unless_the_command_line_names_one(
    repo, monkeypatch
):
    seen = []
    monkeypatch.setattr(
        sweep, "train_all", lambda p, s, device, *rest: seen.append(device)
    )
    text = (repo / "sweeps" / "smoke.yaml").read_text()
    (repo / "sweeps" / "smoke.yaml").write_text("device: cpu\n" + text)
    sweep.run("smoke", progress=False, notebooks=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA here: the CPU-fallback warning
        sweep.run("smoke", device="cuda:0", progress=False, notebooks=False)
    assert seen == ["cpu", "cuda:0"]


def test_a_bad_device_stops_before_any_work(repo, monkeypatch):
    monkeypatch.setattr(sweep, "train_all", lambda *a: pytest.fail("trained"))
    with pytest.raises(ConfigError, match=r"device = 'tpu'; valid"):
        sweep.run("smoke", device="tpu", progress=False)


def test_a_profile_outside_sweeps_reaches_the_notebooks_by_path(
    repo, tmp_path, monkeypatch
):
    from degen.profile import load_profile

    elsewhere = tmp_path / "mine.yaml"
    shutil.copy(repo / "sweeps" / "smoke.yaml", elsewhere)
    jobs = []
    monkeypatch.setattr(sweep, "train_all", lambda *a: None)
    monkeypatch.setattr(sweep, "execute_notebook", lambda job, *a: jobs.append(job))
    sweep.run(str(elsewhere), progress=False)
    assert jobs and {j.parameters["profile"] for j in jobs} == {str(elsewhere)}
    assert load_profile(jobs[0].parameters["profile"]).name == "mine"


def test_the_book_skips_a_killed_runs_partial_output():
    # A sweep killed mid-notebook leaves book/generated/.NAME.partial-PID.ipynb;
    # the strict book build must not see it (it is in no table of contents).
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    excluded = Matcher(config["exclude_patterns"])
    assert excluded("book/generated/.flipflop.partial-123.ipynb")
    assert not excluded("book/generated/flipflop.ipynb")
    assert not excluded("book/intro.md")


def test_a_condition_with_no_usable_network_is_a_warning(tmp_path, caplog):
    # Nothing can reach this threshold in one step: the sweep goes on, but
    # says loudly that the condition's measures will be NaN.
    cond = experiment.Condition(
        "flipflop",
        FlipFlopConfig(n_bits=1, n_steps=5, threshold=1e-12),
        ModelConfig(4),
        TrainConfig(batch_size=2, steps_per_epoch=1, max_epochs=1),
        seeds=(0, 1),
    )
    with caplog.at_level("INFO", logger="degen.sweep"):
        assert sweep._train_condition(cond, str(tmp_path), "cpu", False) == 0
    (record,) = [r for r in caplog.records if r.name == "degen.sweep"]
    assert record.levelname == "WARNING"
    assert "0 of 2 networks converged; its measures will be NaN" in record.message

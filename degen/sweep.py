"""Run a profile: train what the store lacks, execute the notebooks, build the book.

The plan is task x factor x value for training and, for the notebooks, one
task notebook per task, one analysis-level notebook per task and factor and a
summary. Work already in the store is skipped, so a stopped sweep resumes
where it stopped. A notebook that fails stops the sweep with its name and the
failing cell; no book is built from a failed run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from degen import experiment
from degen.config import ConfigError
from degen.model import resolve_device
from degen.profile import Profile, load_profile, repo_root
from degen.store import Store

log = logging.getLogger(__name__)

LEVELS = ("behavior", "dynamics", "weights")
EXECUTORS = ("local",)


class SweepError(RuntimeError):
    """A notebook or a build step failed; the message says which and where."""


@dataclass(frozen=True)
class NotebookJob:
    source: Path  # notebooks/<name>.py
    output: Path  # book/generated/<name>.ipynb
    parameters: dict = field(default_factory=dict)


def root_or_error() -> Path:
    root = repo_root() or repo_root(Path(__file__).parent)
    if root is None:
        raise SweepError(
            "cannot find the degen repository (a folder with sweeps/ and degen/); "
            "run from inside a clone"
        )
    return root


def notebook_jobs(
    profile: Profile, root: Path, source: str | None = None
) -> list[NotebookJob]:
    """The notebooks to execute for ``profile``, in order; ``source`` is how
    the notebooks name the profile (its name, or the path it was read from)."""
    source = source or profile.name
    src, out = root / "notebooks", root / "book" / "generated"
    jobs = []
    for task in profile.tasks:
        jobs.append(
            NotebookJob(src / f"{task}.py", out / f"{task}.ipynb", {"profile": source})
        )
    for task in profile.tasks:
        for factor in profile.factors(task):
            for level in LEVELS:
                jobs.append(
                    NotebookJob(
                        src / f"{level}.py",
                        out / f"{level}_{task}_{factor}.ipynb",
                        {"profile": source, "task": task, "factor": factor},
                    )
                )
    jobs.append(
        NotebookJob(src / "summary.py", out / "summary.ipynb", {"profile": source})
    )
    return jobs


def train_all(profile: Profile, store: Store, device: str, progress: bool) -> None:
    """Train (or load) every condition of the profile."""
    # A condition shared by two factors (their common base value) trains once.
    conds = {
        json.dumps(c.to_dict(), sort_keys=True): c
        for task in profile.tasks
        for factor in profile.factors(task)
        for c in experiment.conditions(profile, task, factor)
    }.values()
    bar = tqdm(conds, desc="ensembles", disable=not progress, unit="ensemble")
    for cond in bar:
        bar.set_postfix_str(f"{cond.task} {experiment._label(cond)}")
        trained = experiment.get_trained(cond, store, device=device, progress=progress)
        log.info(
            "%s %s: %d of %d networks converged",
            cond.task,
            experiment._label(cond),
            trained.n_usable,
            len(cond.seeds),
        )


def execute_notebook(job: NotebookJob, root: Path) -> None:
    """Execute one notebook with papermill; raise :class:`SweepError` naming
    the notebook and the failing cell if any cell fails."""
    import jupytext
    import papermill

    job.output.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(job.source)
    try:
        papermill.execute_notebook(
            notebook,
            str(job.output),
            parameters=job.parameters,
            kernel_name="python3",
            cwd=str(root),
            progress_bar=False,
            log_output=False,
        )
    except papermill.PapermillExecutionError as err:
        raise SweepError(
            f"notebook {job.source.relative_to(root)} failed in cell "
            f"{err.cell_index} (execution count {err.exec_count}) with "
            f"{err.ename}: {err.evalue}\n(see {job.output})"
        ) from None
    _check_outputs(job, root)


def _check_outputs(job: NotebookJob, root: Path) -> None:
    """Fail on any error output left in an executed notebook (the book build
    would not notice it)."""
    import nbformat

    nb = nbformat.read(job.output, as_version=4)
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                raise SweepError(
                    f"notebook {job.source.relative_to(root)} has an error in "
                    f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
                )


def run(
    profile_name: str = "default",
    executor: str = "local",
    device: str | None = None,
    progress: bool = True,
    notebooks: bool = True,
) -> list[Path]:
    """Train everything ``profile_name`` needs, then execute its notebooks.
    ``device`` defaults to the profile's. Returns the executed notebooks."""
    if executor not in EXECUTORS:
        raise ConfigError(
            f"executor = {executor!r}; valid executors: {list(EXECUTORS)}"
        )
    profile = load_profile(profile_name)
    device = device or profile.device
    resolve_device(device)  # a bad name stops here, before any work
    root = root_or_error()
    store = experiment.default_store()
    # The notebooks' kernels find the same store and the same device.
    os.environ["DEGEN_RESULTS"] = str(Path(store.root).resolve())
    os.environ["DEGEN_DEVICE"] = device
    # The notebooks load the profile themselves: hand them a path when the
    # profile was given as one, so that a file outside sweeps/ works too.
    source = str(profile_name)
    if Path(source).suffix in (".yaml", ".yml"):
        source = str(Path(source).resolve())
    jobs = notebook_jobs(profile, root, source) if notebooks else []
    missing = [str(j.source) for j in jobs if not j.source.is_file()]
    if missing:
        raise SweepError(f"notebook sources missing: {missing}")
    train_all(profile, store, device, progress)
    if not notebooks:
        return []
    bar = tqdm(jobs, desc="notebooks", disable=not progress, unit="notebook")
    for job in bar:
        bar.set_postfix_str(job.output.name)
        execute_notebook(job, root)
    return [j.output for j in jobs]


def build_book(root: Path | None = None) -> Path:
    """Build the Jupyter Book strictly (``-W -n --keep-going``); return the
    path of its index page."""
    root = root or root_or_error()
    # The jupyter-book script installed beside this interpreter.
    script = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(script), "build", str(root), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise SweepError(f"the book build failed:\n{tail}")
    index = root / "_build" / "html" / "index.html"
    if not index.is_file():
        raise SweepError(f"the book build reported success but {index} is missing")
    return index

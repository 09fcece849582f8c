"""Run a profile: train what the store lacks, execute the notebooks, build the book.

The plan is task x factor x value for training and, for the notebooks, one
task notebook per task, one analysis-level notebook per task and factor, the
task-complexity chapter and a summary; the book's table of contents is
written from the same list. Work already done is skipped, so a stopped
sweep (killed at any moment, SIGKILL included) resumes where it stopped:
trained ensembles and measures come from the store, and a notebook whose
executed output is in ``book/generated/`` and current (same source,
parameters, profile, store and degen code) is not executed again. Notebooks
are executed into a hidden partial file that is renamed into place when they
end, so a killed execution never looks finished. Training and notebook jobs
run through an executor (:mod:`degen.executors`). A notebook that fails stops
the sweep with its name and the failing cell; no book is built from a failed
run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from degen import analysis, experiment, killpoints
from degen.executors import Executor, SlurmOptions, make_executor
from degen.model import resolve_device
from degen.profile import Profile, load_profile, repo_root
from degen.store import Store, file_lock, lock_held

log = logging.getLogger(__name__)

LEVELS = ("behavior", "dynamics", "weights")
# What a notebook's output can be; see notebook_state.
NOTEBOOK_STATES = ("done", "running", "missing", "failed")


class SweepError(RuntimeError):
    """A notebook or a build step failed; the message says which and where."""


@dataclass(frozen=True)
class NotebookJob:
    source: Path  # notebooks/<name>.py
    output: Path  # book/generated/<name>.ipynb
    parameters: dict = field(default_factory=dict)
    part: str = ""  # the part of the book it goes in
    title: str = ""  # its entry in the book's navigation; the page's own if ""


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
    the notebooks name the profile (its name, or the path it was read from).

    Each task's page comes with the level pages of each of its factors after
    it; then the task-complexity chapter (when a factor tests the complexity
    row) and the summary, which read what the level pages measured.
    """
    source = source or profile.name
    src, out = root / "notebooks", root / "book" / "generated"
    jobs = []
    for task in profile.tasks:
        jobs.append(
            NotebookJob(
                src / f"{task}.py",
                out / f"{task}.ipynb",
                {"profile": source},
                part=analysis.TASK_TITLES[task],
            )
        )
        for factor in profile.factors(task):
            label = analysis.knob_label(profile, task, factor)
            for level in LEVELS:
                jobs.append(
                    NotebookJob(
                        src / f"{level}.py",
                        out / f"{level}_{task}_{factor}.ipynb",
                        {"profile": source, "task": task, "factor": factor},
                        part=analysis.TASK_TITLES[task],
                        title=f"{level.capitalize()} against {label}",
                    )
                )
    results = "Results"
    if analysis.complexity_factors(profile):
        jobs.append(
            NotebookJob(
                src / "complexity.py",
                out / "complexity.ipynb",
                {"profile": source},
                part=results,
            )
        )
    jobs.append(
        NotebookJob(
            src / "summary.py", out / "summary.ipynb", {"profile": source}, part=results
        )
    )
    return jobs


# Text pages of the book: the root, and the pages before and after the
# executed notebooks.
BOOK_ROOT = "book/intro"
BOOK_BEFORE = {"Background": ["book/methods"]}
BOOK_AFTER = {"Results": ["book/choices", "book/performance"]}


def book_toc(jobs: list[NotebookJob], root: Path) -> dict:
    """The book's table of contents (``_toc.yml``) for ``jobs``: the text
    pages, and every executed notebook in its part, in the jobs' order."""
    parts = {caption: [] for caption in BOOK_BEFORE}
    for caption, pages in BOOK_BEFORE.items():
        parts[caption] += [{"file": page} for page in pages]
    for job in jobs:
        entry = {"file": job.output.relative_to(root).with_suffix("").as_posix()}
        if job.title:
            entry["title"] = job.title
        parts.setdefault(job.part or "Notebooks", []).append(entry)
    for caption, pages in BOOK_AFTER.items():
        parts.setdefault(caption, []).extend({"file": page} for page in pages)
    return {
        "format": "jb-book",
        "root": BOOK_ROOT,
        "parts": [{"caption": c, "chapters": ch} for c, ch in parts.items()],
    }


def write_toc(profile: Profile, root: Path, path: Path) -> Path:
    """Write the table of contents of ``profile``'s book to ``path``."""
    toc = book_toc(notebook_jobs(profile, root), root)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(toc, sort_keys=False, allow_unicode=True)
    path.write_text(
        f"# The table of contents of profile {profile.name!r}, written by "
        f"degen.sweep.write_toc.\n{text}"
    )
    return path


def train_all(
    profile: Profile,
    store: Store,
    device: str,
    progress: bool,
    executor: Executor | None = None,
) -> None:
    """Train (or load) every condition of the profile, each as one job of
    ``executor`` (default: one after another in this process)."""
    # A condition shared by two factors (their common base value) trains once.
    conds = list(
        {
            json.dumps(c.to_dict(), sort_keys=True): c
            for task in profile.tasks
            for factor in profile.factors(task)
            for c in experiment.conditions(profile, task, factor)
        }.values()
    )
    executor = executor or make_executor("local", progress=progress)
    train = functools.partial(
        _train_condition,
        store_root=str(store.root),
        device=device,
        progress=progress and executor.in_process,
    )
    labels = [f"{c.task} {experiment._label(c)}" for c in conds]
    executor.map(train, conds, desc="ensembles", labels=labels)


def _train_condition(
    cond: experiment.Condition, store_root: str, device: str, progress: bool
) -> int:
    """One training job: the ensemble of ``cond`` from the store, or trained
    and saved; returns how many of its networks are usable."""
    trained = experiment.get_trained(cond, Store(store_root), device, progress)
    log.log(
        logging.INFO if trained.n_usable else logging.WARNING,
        "%s %s: %d of %d networks converged%s",
        cond.task,
        experiment._label(cond),
        trained.n_usable,
        len(cond.seeds),
        ""
        if trained.n_usable
        else "; its measures will be NaN (a larger epoch budget, a smaller "
        "learning rate or penalty, or a looser threshold may help)",
    )
    return trained.n_usable


def notebook_digests(
    jobs: list[NotebookJob], profile: Profile, root: Path, store: Store
) -> dict[Path, str]:
    """For each job's output, a sha256 of what its execution depends on: the
    notebook source, its parameters, the profile, the store it reads and the
    degen code its kernel imports. An output recorded under another digest
    is outdated."""
    # The kernels run in root, so they import root/degen when it is there.
    package = root / "degen"
    if not package.is_dir():
        package = Path(__file__).resolve().parent
    code = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        code.update(path.relative_to(package).as_posix().encode() + b"\0")
        code.update(path.read_bytes() + b"\0")
    shared = {
        "profile": repr(profile),
        "store": str(Path(store.root).resolve()),
        "code": code.hexdigest(),
    }
    digests = {}
    for job in jobs:
        doc = {
            **shared,
            "source": hashlib.sha256(job.source.read_bytes()).hexdigest(),
            "parameters": job.parameters,
        }
        text = json.dumps(doc, sort_keys=True, default=str)
        digests[job.output] = hashlib.sha256(text.encode()).hexdigest()
    return digests


def notebook_state(job: NotebookJob, digest: str) -> tuple[str, str]:
    """(state, reason) of a notebook's output, one of :data:`NOTEBOOK_STATES`:
    "running" while a sweep executes it, "done" when its output is complete,
    free of errors and current (``digest``, see :func:`notebook_digests`)."""
    if lock_held(_lock_path(job)):
        return "running", "a sweep is executing it"
    return _output_state(job, digest)


def _output_state(job: NotebookJob, digest: str) -> tuple[str, str]:
    if not job.output.is_file():
        if _partials(job):
            return "missing", "interrupted (a killed run left a partial output)"
        return "missing", "not executed yet"
    try:
        nb = json.loads(job.output.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return "failed", f"{job.output.name} cannot be read: {exc}"
    meta = nb.get("metadata", {})
    error = _first_error(nb)
    if error:
        return "failed", error
    if meta.get("papermill", {}).get("exception"):
        return "failed", "papermill recorded an exception"
    if not meta.get("papermill", {}).get("end_time") or any(
        cell.get("execution_count") is None
        for cell in nb.get("cells", [])
        if cell.get("cell_type") == "code" and "".join(cell.get("source", ""))
    ):
        return "missing", "incomplete (its execution did not finish)"
    if meta.get("degen", {}).get("inputs") != digest:
        return "missing", "outdated (its source, the profile or degen changed)"
    return "done", "executed"


def _first_error(nb: dict) -> str | None:
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
    return None


def _lock_path(job: NotebookJob) -> Path:
    return job.output.parent / ".locks" / f"{job.output.stem}.lock"


def _partial_path(job: NotebookJob) -> Path:
    # hidden, so that neither the book build nor a later run takes it for
    # an executed notebook
    return job.output.with_name(f".{job.output.stem}.partial-{os.getpid()}.ipynb")


def _partials(job: NotebookJob) -> list[Path]:
    return sorted(job.output.parent.glob(f".{job.output.stem}.partial-*.ipynb"))


def _notebook_job(item: tuple[NotebookJob, str], root: Path) -> bool:
    """One notebook job: execute it unless its output is done; True when it
    was executed. The notebook's lock keeps two sweeps off the same one."""
    job, digest = item
    with file_lock(_lock_path(job), f"notebook {job.output.name}"):
        if _output_state(job, digest)[0] == "done":
            log.info("%s is up to date; not executed again", job.output.name)
            return False
        for stale in _partials(job):  # no one else holds the lock: all stale
            stale.unlink()
        execute_notebook(job, root, digest)
    return True


def execute_notebook(job: NotebookJob, root: Path, digest: str = "") -> None:
    """Execute one notebook with papermill; raise :class:`SweepError` naming
    the notebook and the failing cell if any cell fails.

    The output appears in ``job.output`` only when the execution has ended
    (a failed one too, to be read); ``digest`` is recorded in its metadata.
    """
    import jupytext
    import papermill

    job.output.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(job.source)
    notebook.metadata["degen"] = {"inputs": digest}
    partial = _partial_path(job)
    watching = killpoints.watch_notebook(partial)
    failure = None
    try:
        try:
            papermill.execute_notebook(
                notebook,
                str(partial),
                parameters=job.parameters,
                kernel_name="python3",
                cwd=str(root),
                progress_bar=False,
                log_output=False,
            )
        except papermill.PapermillExecutionError as err:
            failure = SweepError(
                f"notebook {job.source.relative_to(root)} failed in cell "
                f"{err.cell_index} (execution count {err.exec_count}) with "
                f"{err.ename}: {err.evalue}\n(see {job.output})"
            )
        else:
            try:
                _check_outputs(job, root, partial)
            except SweepError as err:
                failure = err
        os.replace(partial, job.output)
    finally:
        if watching is not None:
            watching.set()
        # left only when papermill itself broke (e.g. the kernel died)
        partial.unlink(missing_ok=True)
    if failure is not None:
        raise failure


def _check_outputs(job: NotebookJob, root: Path, path: Path | None = None) -> None:
    """Fail on any error output left in an executed notebook (the book build
    would not notice it); ``path`` defaults to the job's output."""
    import nbformat

    nb = nbformat.read(path or job.output, as_version=4)
    error = _first_error(nb)
    if error:
        raise SweepError(
            f"notebook {job.source.relative_to(root)} has an error in {error}"
        )


def profile_source(profile_name: str | os.PathLike) -> str:
    """How the notebooks are to name the profile: the notebooks load it
    themselves, so a profile given as a file gets its absolute path (and a
    file outside sweeps/ works too)."""
    source = str(profile_name)
    if Path(source).suffix in (".yaml", ".yml"):
        source = str(Path(source).resolve())
    return source


def run(
    profile_name: str = "default",
    executor: str = "local",
    device: str | None = None,
    progress: bool = True,
    notebooks: bool = True,
    jobs: int = 1,
    slurm: SlurmOptions | None = None,
) -> list[Path]:
    """Train everything ``profile_name`` needs, then execute its notebooks
    that are not done yet, all through ``executor`` ("local" with ``jobs``
    processes, or "slurm" with ``slurm`` options). ``device`` defaults to
    the profile's. Returns the notebooks' outputs."""
    store = experiment.default_store()
    runner = make_executor(
        executor,
        jobs=jobs,
        slurm=slurm,
        folder=Path(store.root) / ".submitit",
        progress=progress,
    )
    profile = load_profile(profile_name)
    device = device or profile.device
    resolve_device(device)  # a bad name stops here, before any work
    root = root_or_error()
    # The notebooks' kernels find the same store and the same device.
    os.environ["DEGEN_RESULTS"] = str(Path(store.root).resolve())
    os.environ["DEGEN_DEVICE"] = device
    source = profile_source(profile_name)
    nb_jobs = notebook_jobs(profile, root, source) if notebooks else []
    missing = [str(j.source) for j in nb_jobs if not j.source.is_file()]
    if missing:
        raise SweepError(f"notebook sources missing: {missing}")
    train_all(profile, store, device, progress, runner)
    if not notebooks:
        return []
    digests = notebook_digests(nb_jobs, profile, root, store)
    runner.map(
        functools.partial(_notebook_job, root=root),
        [(job, digests[job.output]) for job in nb_jobs],
        desc="notebooks",
        labels=[job.output.name for job in nb_jobs],
    )
    return [job.output for job in nb_jobs]


def build_book(root: Path | None = None, profile: str | None = None) -> Path:
    """Build the Jupyter Book strictly (``-W -n --keep-going``); return the
    path of its index page.

    With ``profile`` (a name or a path) the table of contents lists exactly
    that profile's notebooks (written to ``book/generated/_toc.yml``), and a
    notebook not yet executed stops the build with its name; without it the
    committed ``_toc.yml`` (the default profile's) is used.
    """
    root = root or root_or_error()
    # The jupyter-book script installed beside this interpreter.
    script = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(script), "build", str(root), "-W", "-n", "--keep-going"]
    if profile is not None:
        prof = load_profile(profile)
        missing = [
            str(job.output.relative_to(root))
            for job in notebook_jobs(prof, root)
            if not job.output.is_file()
        ]
        if missing:
            raise SweepError(
                f"profile {prof.name!r} has notebooks not yet executed: {missing}; "
                f"run `python -m degen sweep --profile {profile}` first"
            )
        toc = write_toc(prof, root, root / "book" / "generated" / "_toc.yml")
        cmd += ["--toc", str(toc)]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise SweepError(f"the book build failed:\n{tail}")
    index = root / "_build" / "html" / "index.html"
    if not index.is_file():
        raise SweepError(f"the book build reported success but {index} is missing")
    return index

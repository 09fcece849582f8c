"""Where a sweep's jobs run: this process, local worker processes, or Slurm.

Every executor has one method, :meth:`Executor.map`: call ``fn(item)`` for
each item and return the results in order. Training and notebook jobs both go
through it. Jobs that need the same store entry still compute it once: the
store's per-key lock makes the others wait and load it.

- ``local`` (the default): ``jobs=1`` runs each job in this process, one after
  another; ``jobs=N`` runs them in N worker processes.
- ``slurm``: one Slurm job array per :meth:`~Executor.map` call, through
  submitit. Where Slurm is absent (no ``sbatch`` on the PATH) the same jobs
  run as local processes through submitit's local executor, ``jobs`` at a
  time, and a log line says so.

A job that fails does not stop the others already running; :meth:`map` waits
for them, then raises :class:`JobError` naming every failed job.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from degen.config import ConfigError, check_range

log = logging.getLogger(__name__)

EXECUTORS = ("local", "slurm")


class JobError(RuntimeError):
    """One or more jobs failed; the message names each and why."""


@dataclass(frozen=True)
class SlurmOptions:
    """What each Slurm job asks for."""

    partition: str | None = None  # None: the cluster's default partition
    time_min: int = 240  # time limit of one job, minutes
    gpus: int | None = None  # per job; None: none on Slurm, all visible locally
    array_parallelism: int = 32  # jobs of one array running at the same time

    def __post_init__(self):
        if self.partition is not None and not (
            isinstance(self.partition, str) and self.partition.strip()
        ):
            raise ConfigError(
                f"SlurmOptions.partition = {self.partition!r}; give a partition "
                "name, or None for the cluster's default"
            )
        _check_count("SlurmOptions", "time_min", self.time_min, 1)
        if self.gpus is not None:
            _check_count("SlurmOptions", "gpus", self.gpus, 0)
        _check_count("SlurmOptions", "array_parallelism", self.array_parallelism, 1)


class Executor:
    """Runs ``fn(item)`` for every item; see :meth:`map`."""

    name = ""
    in_process = False  # jobs share this process (and its progress bars)

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence,
        desc: str,
        labels: Sequence[str] | None = None,
    ) -> list:
        """Results of ``fn(item)`` in the order of ``items``; ``desc`` names
        the jobs on the progress bar, ``labels`` each job in errors."""
        raise NotImplementedError


class LocalExecutor(Executor):
    """Jobs in this process (``jobs=1``) or in ``jobs`` worker processes."""

    name = "local"

    def __init__(self, jobs: int = 1, progress: bool = True):
        _check_count("LocalExecutor", "jobs", jobs, 1)
        self.jobs = jobs
        self.progress = progress
        self.in_process = jobs == 1

    def __repr__(self) -> str:
        return f"LocalExecutor(jobs={self.jobs})"

    def map(self, fn, items, desc, labels=None):
        items = list(items)
        labels = _labels(items, labels)
        bar = tqdm(total=len(items), desc=desc, disable=not self.progress)
        try:
            if self.in_process:
                # one after another, and the first failure stops the rest
                results = []
                for item, label in zip(items, labels, strict=True):
                    bar.set_postfix_str(label)
                    results.append(fn(item))
                    bar.update()
                return results
            return self._pool_map(fn, items, desc, labels, bar)
        finally:
            bar.close()

    def _pool_map(self, fn, items, desc, labels, bar) -> list:
        # spawn, not fork: a forked copy of a process that has started torch's
        # thread pools can hang
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=min(self.jobs, max(1, len(items))),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_share_cores,
            initargs=(self.jobs,),
        )
        try:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            results: list = [None] * len(items)
            errors: dict[int, BaseException] = {}
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except Exception as exc:  # reported with the others below
                    errors[i] = exc
                bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        _raise_failures(desc=desc, labels=labels, errors=errors)
        return results


class SubmititExecutor(Executor):
    """Slurm job arrays through submitit; local submitit processes (``jobs``
    at a time) where there is no Slurm."""

    name = "slurm"

    def __init__(
        self,
        folder: str | os.PathLike,
        options: SlurmOptions | None = None,
        jobs: int = 1,
        progress: bool = True,
    ):
        _check_count("SubmititExecutor", "jobs", jobs, 1)
        try:
            import submitit
        except ImportError:
            raise ConfigError(
                "executor = 'slurm' needs submitit; install it with "
                "pip install -e '.[cluster]'"
            ) from None
        self._submitit = submitit
        self.folder = Path(folder)
        self.options = options or SlurmOptions()
        self.jobs = jobs
        self.progress = progress
        self.cluster = "slurm" if shutil.which("sbatch") else "local"
        if self.cluster == "local":
            log.warning(
                "no Slurm here (sbatch is not on the PATH): the slurm executor "
                "runs its jobs as local processes through submitit, %d at a time",
                jobs,
            )

    def __repr__(self) -> str:
        return f"SubmititExecutor(cluster={self.cluster!r}, {self.options})"

    def _executor(self, desc: str, run_dir: Path):
        ex = self._submitit.AutoExecutor(folder=run_dir / "%j", cluster=self.cluster)
        opts = self.options
        params: dict[str, Any] = {
            "name": f"degen-{desc}",
            "timeout_min": opts.time_min,
            "slurm_array_parallelism": opts.array_parallelism,
        }
        if opts.partition:
            params["slurm_partition"] = opts.partition
        gpus = opts.gpus
        if gpus is None and self.cluster == "local":
            # submitit hides every GPU from a local job that asks for none
            import torch

            gpus = torch.cuda.device_count()
        if gpus:
            params["gpus_per_node"] = gpus
        ex.update_parameters(**params)
        return ex

    def map(self, fn, items, desc, labels=None):
        items = list(items)
        labels = _labels(items, labels)
        if not items:
            return []
        # one folder per call, removed once every job in it has succeeded
        stamp = time.strftime("%Y%m%dT%H%M%S")
        run_dir = self.folder / f"{desc}-{stamp}-{os.getpid()}"
        ex = self._executor(desc, run_dir)
        bar = tqdm(total=len(items), desc=desc, disable=not self.progress)
        jobs: dict[int, Any] = {}
        try:
            if self.cluster == "slurm":
                jobs = dict(enumerate(ex.map_array(fn, items)))
                log.info("submitted %s as Slurm array %s", desc, jobs[0].job_id)
                self._wait(jobs, bar)
            else:
                self._run_locally(ex, fn, items, jobs, bar)
        except BaseException:
            for job in jobs.values():  # an interrupted sweep leaves no jobs behind
                job.cancel(check=False)
            raise
        finally:
            bar.close()
        errors: dict[int, BaseException] = {}
        results: list = [None] * len(items)
        for i, job in jobs.items():
            try:
                results[i] = job.result()
            except self._submitit.core.utils.UncompletedJobError as exc:
                errors[i] = JobError(_job_failure(job, exc))
        _raise_failures(desc=desc, labels=labels, errors=errors)
        shutil.rmtree(run_dir, ignore_errors=True)  # only successful jobs' logs
        return results

    def _wait(self, jobs: dict, bar) -> None:
        poll = 10.0 if self.cluster == "slurm" else 0.2
        waiting = dict(jobs)
        while waiting:
            finished = [i for i, job in waiting.items() if job.done()]
            for i in finished:
                del waiting[i]
                bar.update()
            if waiting and not finished:
                time.sleep(poll)

    def _run_locally(self, ex, fn, items, jobs: dict, bar) -> None:
        """At most ``self.jobs`` submitit processes at once."""
        queue = list(enumerate(items))
        running: dict[int, Any] = {}
        while queue or running:
            while queue and len(running) < self.jobs:
                i, item = queue.pop(0)
                jobs[i] = running[i] = ex.submit(fn, item)
            finished = [i for i, job in running.items() if job.done()]
            for i in finished:
                del running[i]
                bar.update()
            if running and not finished:
                time.sleep(0.2)


def make_executor(
    name: str,
    *,
    jobs: int = 1,
    slurm: SlurmOptions | None = None,
    folder: str | os.PathLike | None = None,
    progress: bool = True,
) -> Executor:
    """The executor called ``name``; ``folder`` holds submitit's job files."""
    if name not in EXECUTORS:
        raise ConfigError(f"executor = {name!r}; valid executors: {list(EXECUTORS)}")
    _check_count("executor", "jobs", jobs, 1)
    if name == "local":
        if slurm is not None and slurm != SlurmOptions():
            raise ConfigError(
                f"Slurm options {slurm} were given with executor = 'local'; "
                "use executor = 'slurm' or drop them"
            )
        return LocalExecutor(jobs, progress)
    if folder is None:
        raise ConfigError("executor = 'slurm' needs a folder for its job files")
    return SubmititExecutor(folder, slurm, jobs, progress)


def _check_count(owner: str, name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(
            f"{owner}.{name} = {value!r} has type {type(value).__name__}; "
            f"give a whole number >= {low}"
        )
    check_range(owner, name, value, low)


def _share_cores(jobs: int) -> None:
    """Give each of ``jobs`` worker processes its share of the cores (torch
    reads these when a job first imports it)."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)


def _labels(items: list, labels: Sequence[str] | None) -> list[str]:
    if labels is None:
        return [str(item) for item in items]
    labels = list(labels)
    if len(labels) != len(items):
        raise ValueError(f"{len(labels)} labels for {len(items)} items")
    return labels


def _job_failure(job, exc: BaseException) -> str:
    # submitit's message holds the job's traceback; its last lines say why
    lines = [line for line in str(exc).splitlines() if line.strip()]
    tail = [line for line in lines if not line.startswith("You can check")][-6:]
    return f"job {job.job_id} failed (logs: {job.paths.stderr}):\n" + "\n".join(tail)


def _raise_failures(desc: str, labels: list[str], errors: dict) -> None:
    if not errors:
        return
    if len(errors) == 1:
        ((i, exc),) = errors.items()
        if not isinstance(exc, JobError):
            raise exc  # a lone failure keeps its own type and message
    lines = [f"- {labels[i]}: {exc}" for i, exc in sorted(errors.items())]
    raise JobError(
        f"{len(errors)} of {len(labels)} {desc} jobs failed:\n" + "\n".join(lines)
    )

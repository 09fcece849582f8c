"""Deliberate crashes at named points, so that resuming can be tested.

Off by default. ``degen sweep`` and ``degen book`` call :func:`arm`, which
reads ``DEGEN_KILL_AT=<point>[:<n>]``: the process then kills itself with
SIGKILL the n-th time (default: the first) it reaches ``point``. :func:`arm`
removes the variable from the environment, so the processes a sweep starts
(notebook kernels, worker processes, submitit jobs) never fire. The points:

- ``compute``: a store entry computed (an ensemble trained), nothing written
- ``write``: the entry's temporary folder half written (tensors, no meta.json)
- ``publish``: the temporary folder complete, not yet renamed into place
- ``notebook``: a notebook this process executes (notebooks already done
  are skipped, not counted) partly executed, its kernel running, its output
  not yet in ``book/generated/``
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import MutableMapping
from pathlib import Path

from degen.config import ConfigError

log = logging.getLogger(__name__)

VARIABLE = "DEGEN_KILL_AT"
POINTS = ("compute", "write", "publish", "notebook")

_remaining: dict[str, int] = {}  # the armed point -> arrivals left before the kill


def arm(environ: MutableMapping[str, str] = os.environ) -> None:
    """Read and remove ``DEGEN_KILL_AT``; do nothing when it is unset."""
    _remaining.clear()
    spec = environ.pop(VARIABLE, "")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point not in POINTS or not (count == "" or (count.isdigit() and int(count))):
        raise ConfigError(
            f"{VARIABLE} = {spec!r}; give <point> or <point>:<n> with n >= 1 and "
            f"point one of {list(POINTS)}"
        )
    _remaining[point] = int(count or 1)


def armed(point: str) -> bool:
    return point in _remaining


def reached(point: str) -> None:
    """Count an arrival at ``point``; SIGKILL this process on the armed one."""
    if _arrive(point):
        _kill(point)


def watch_notebook(partial: Path) -> threading.Event | None:
    """Count an arrival at ``notebook`` (a notebook about to be executed into
    ``partial``). On the armed one, SIGKILL this process once the notebook
    has a finished cell and has not ended; set the returned event when the
    execution is over to stop watching."""
    if not _arrive("notebook"):
        return None
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            if _mid_run(partial):
                _kill("notebook")

    threading.Thread(target=watch, daemon=True).start()
    return done


def _arrive(point: str) -> bool:
    """Count an arrival; True on the one the kill is armed for."""
    if point not in _remaining:
        return False
    _remaining[point] -= 1
    return _remaining[point] == 0


def _kill(point: str) -> None:
    log.warning("%s: killing process %d at %r", VARIABLE, os.getpid(), point)
    os.kill(os.getpid(), signal.SIGKILL)


def _mid_run(partial: Path) -> bool:
    try:
        nb = json.loads(partial.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not there yet, or caught mid-write
        return False
    if nb.get("metadata", {}).get("papermill", {}).get("end_time"):
        return False
    return any(
        cell.get("metadata", {}).get("papermill", {}).get("status") == "completed"
        for cell in nb.get("cells", [])
        if cell.get("cell_type") == "code"
    )

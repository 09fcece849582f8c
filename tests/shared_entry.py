"""A job for the executor tests, importable by their worker processes without
the weight of the test modules: ask the store for one shared entry."""

from __future__ import annotations

import fcntl
import os
import time

import torch

from degen.store import Store


def compute_once(item: int, root: str, marker: str) -> float:
    """The entry's value; its compute appends this process's id to
    ``marker``, so the marker has one line per computation."""

    def compute():
        with open(marker, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # the other job waits on the lock meanwhile
        return {"tensors": {"w": torch.full((3,), float(os.getpid()))}}

    entry = Store(root).get_or_compute("ensemble", {"shared": True}, compute)
    return float(entry.tensors["w"][0])

"""What the benchmark scripts share: a briefly trained flip-flop ensemble, so
that every benchmark measures networks like the ones the book compares, and
the machine's load, printed beside each timing."""

from __future__ import annotations

import os

import torch

from degen.model import Ensemble, ModelConfig
from degen.tasks import make_task
from degen.train import TrainConfig, train_ensemble


def trained_flipflop(k: int, n: int, epochs: int, steps: int):
    """(task, model) of k networks of n units trained ``epochs * steps`` steps
    on the 3-bit flip-flop (never long enough to converge)."""
    task = make_task("flipflop", {"n_bits": 3})
    model = Ensemble(ModelConfig(n), task.n_inputs, task.n_outputs, range(k))
    config = TrainConfig(batch_size=32, steps_per_epoch=steps, max_epochs=epochs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 5x faster than two threads on a busy 2-core machine
    try:
        train_ensemble(model, task, config, threshold=1e-12)
    finally:
        torch.set_num_threads(threads)
    return task, model


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())

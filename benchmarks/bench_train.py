"""Training throughput: one degen ensemble of K against K ``torch.nn.RNN``
models trained one after another, on the same trials for the same steps.

Prints network-steps per second for both, their ratio, and the ensemble's
achieved FLOP/s against a large matmul timed in the same process.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from degen.model import Ensemble, ModelConfig, resolve_device
from degen.tasks import make_task
from degen.train import TrainConfig, train_ensemble


def reference(task, k, n, batch, steps, lr, device) -> float:
    """K separate nn.RNN + nn.Linear models, one after another: seconds."""
    start = time.perf_counter()
    for seed in range(k):
        torch.manual_seed(seed)
        rnn = nn.RNN(task.n_inputs, n, nonlinearity="tanh", batch_first=True)
        readout = nn.Linear(n, task.n_outputs)
        rnn.to(device), readout.to(device)
        params = list(rnn.parameters()) + list(readout.parameters())
        opt = torch.optim.Adam(params, lr=lr)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            b = task.sample(batch, gen).to(device)
            hidden, _ = rnn(b.inputs)
            loss = ((readout(hidden) - b.targets) ** 2 * b.mask).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def ensemble(task, k, n, batch, steps, lr, device) -> float:
    """One degen ensemble of K: seconds."""
    model = Ensemble(ModelConfig(n), task.n_inputs, task.n_outputs, range(k))
    model.to(device)
    config = TrainConfig(lr=lr, batch_size=batch, steps_per_epoch=steps, max_epochs=1)
    start = time.perf_counter()
    train_ensemble(model, task, config, threshold=1e-12)  # never converges
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def matmul_ceiling(device, size=2048, repeats=10) -> float:
    """FLOP/s of a large float32 matmul: the machine's practical ceiling."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--networks", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps-per-trial", type=int, default=100)
    parser.add_argument(
        "--train-steps",
        type=int,
        default=20,
        help="optimizer steps per network and round (real runs take thousands)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="alternating timed rounds of each; the medians are reported",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    task = make_task("flipflop", {"n_bits": 3, "n_steps": args.steps_per_trial})
    k, n, b, t, s = (
        args.networks,
        args.hidden,
        args.batch,
        args.steps_per_trial,
        args.train_steps,
    )
    ensemble(task, 2, n, b, 1, 3e-3, device)  # warm-ups
    reference(task, 1, n, b, 1, 3e-3, device)
    # Alternating rounds, so a burst of load on a shared machine hits both
    # sides alike; the median of each side is what counts.
    ours, ref = [], []
    for _ in range(args.repeats):
        ours.append(ensemble(task, k, n, b, s, 3e-3, device))
        ref.append(reference(task, k, n, b, s, 3e-3, device))
    ours, ref = float(np.median(ours)), float(np.median(ref))
    ceiling = matmul_ceiling(device)
    # Recurrent matmuls dominate: 2*b*n*n per step forward, about twice that
    # backward (input and weight gradients).
    flops = 3 * 2 * b * n * n * t * k * s
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    print(
        f"sizes: K={k} networks, n={n}, batch={b}, T={t}, {s} optimizer steps, "
        f"median of {args.repeats} rounds"
    )
    print(f"nn.RNN loop : {k * s / ref:8.2f} network-steps/s ({ref:.2f} s)")
    print(f"degen       : {k * s / ours:8.2f} network-steps/s ({ours:.2f} s)")
    print(f"ratio (degen / nn.RNN loop): {ref / ours:.2f}x")
    print(
        f"achieved {flops / ours / 1e9:.2f} GFLOP/s of a {ceiling / 1e9:.2f} GFLOP/s "
        f"matmul ceiling ({100 * flops / ours / ceiling:.0f}%)"
    )


if __name__ == "__main__":
    main()

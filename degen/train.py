"""Train an ensemble to the task threshold, each network on its own schedule.

Network k sees its own data stream, has its own learning rate (halved on a
plateau), its own gradient clipping and its own Adam state. Once its epoch
loss drops below the threshold it trains ``patience`` more epochs and is then
frozen: it is no longer run, sampled for, or updated. A network whose loss
becomes NaN or infinite is frozen at once and flagged as diverged.

Each network minimises its task MSE plus the structural penalties of PAPER.md
on its own recurrent matrix, ``nuclear_lambda * sum of singular values of
W_h + l1_lambda * sum |W_h|``; a strength of 0 leaves the penalty out of the
computation altogether. Losses and the convergence test are the task MSE
alone. The base learning rate is multiplied by the model's ``lr_scale``
(gamma under muP).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from degen.config import check_range, check_types
from degen.model import Ensemble, Workspace, derive_seeds
from degen.tasks.base import masked_mse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every network of an ensemble."""

    lr: float = 3e-3
    batch_size: int = 64
    steps_per_epoch: int = 128
    max_epochs: int = 40
    patience: int = 3  # epochs trained after the threshold is first reached
    clip_grad_norm: float = 1.0  # per network; 0 turns clipping off
    plateau_factor: float = 0.5  # ReduceLROnPlateau, per network and epoch
    plateau_patience: int = 5
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    nuclear_lambda: float = 0.0  # strength of the nuclear norm of W_h
    l1_lambda: float = 0.0  # strength of the L1 norm of W_h

    def __post_init__(self):
        check_types(self)
        name = "TrainConfig"
        check_range(name, "lr", self.lr, 0.0, low_open=True)
        check_range(name, "batch_size", self.batch_size, 1)
        check_range(name, "steps_per_epoch", self.steps_per_epoch, 1)
        check_range(name, "max_epochs", self.max_epochs, 1)
        check_range(name, "patience", self.patience, 0)
        check_range(name, "clip_grad_norm", self.clip_grad_norm, 0.0)
        check_range(
            name,
            "plateau_factor",
            self.plateau_factor,
            0.0,
            1.0,
            low_open=True,
            high_open=True,
        )
        check_range(name, "plateau_patience", self.plateau_patience, 0)
        for i, beta in enumerate(self.adam_betas):
            check_range(name, f"adam_betas[{i}]", beta, 0.0, 1.0, high_open=True)
        check_range(name, "adam_eps", self.adam_eps, 0.0, low_open=True)
        check_range(name, "nuclear_lambda", self.nuclear_lambda, 0.0)
        check_range(name, "l1_lambda", self.l1_lambda, 0.0)


@dataclass
class TrainResult:
    """What training left behind; arrays have a leading network axis."""

    final: dict[str, torch.Tensor]  # parameters after training
    initial: dict[str, torch.Tensor]  # parameters before training
    step_loss: np.ndarray  # [net, step], NaN once frozen
    epoch_loss: np.ndarray  # [net, epoch], NaN once frozen
    converged: np.ndarray  # [net] bool: reached the threshold
    diverged: np.ndarray  # [net] bool: loss became NaN or infinite
    converged_epoch: np.ndarray  # [net] first epoch below threshold, -1 if none
    epochs_trained: np.ndarray  # [net]
    final_lr: np.ndarray  # [net]
    info: dict = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "step_loss": self.step_loss,
            "epoch_loss": self.epoch_loss,
            "converged": self.converged,
            "diverged": self.diverged,
            "converged_epoch": self.converged_epoch,
            "epochs_trained": self.epochs_trained,
            "final_lr": self.final_lr,
        }


class EnsembleAdam:
    """Adam over stacked parameters with one learning rate and one step count
    per network, updating only the networks it is told to (the same update as
    ``torch.optim.Adam`` for each network)."""

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        lr: torch.Tensor,
        betas: tuple[float, float],
        eps: float,
    ):
        self.params = params
        self.lr = lr  # [net]
        self.betas, self.eps = betas, eps
        self.m = {k: torch.zeros_like(p) for k, p in params.items()}
        self.v = {k: torch.zeros_like(p) for k, p in params.items()}
        self.steps = torch.zeros_like(lr)

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor], index: torch.Tensor) -> None:
        """Apply gradients (of the networks in ``index``, in that order)."""
        b1, b2 = self.betas
        self.steps[index] += 1
        t = self.steps[index]
        bias1 = 1 - b1**t
        bias2_sqrt = torch.sqrt(1 - b2**t)
        step_size = self.lr[index] / bias1
        for name, p in self.params.items():
            g = grads[name]
            shape = (-1,) + (1,) * (g.dim() - 1)
            m = self.m[name][index].mul_(b1).add_(g, alpha=1 - b1)
            v = self.v[name][index].mul_(b2).addcmul_(g, g, value=1 - b2)
            self.m[name][index] = m
            self.v[name][index] = v
            denom = v.sqrt() / bias2_sqrt.to(p.dtype).view(shape) + self.eps
            p[index] = p[index] - step_size.to(p.dtype).view(shape) * m / denom


class EnsemblePlateau:
    """ReduceLROnPlateau (mode min, relative threshold 1e-4) for each network."""

    def __init__(
        self, lr: torch.Tensor, factor: float, patience: int, threshold: float = 1e-4
    ):
        self.lr, self.factor, self.patience = lr, factor, patience
        self.threshold = threshold
        self.best = np.full(lr.shape[0], np.inf)
        self.bad = np.zeros(lr.shape[0], dtype=int)

    def step(self, epoch_loss: np.ndarray, index: np.ndarray) -> None:
        for k in index:
            if epoch_loss[k] < self.best[k] * (1 - self.threshold):
                self.best[k], self.bad[k] = epoch_loss[k], 0
            else:
                self.bad[k] += 1
            if self.bad[k] > self.patience:
                self.lr[k] *= self.factor
                self.bad[k] = 0


def clip_per_network(grads: dict[str, torch.Tensor], max_norm: float) -> None:
    """Scale each network's gradient so its global norm is at most ``max_norm``
    (as ``torch.nn.utils.clip_grad_norm_`` does for one model)."""
    sq = sum(g.flatten(1).pow(2).sum(1) for g in grads.values())
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads.values():
        g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))


def regularization(w_h_kxnxn: torch.Tensor, config: TrainConfig):
    """Each network's structural penalty on its recurrent matrix, ``[net]``:
    ``nuclear_lambda * sum_i s_i(W_h) + l1_lambda * sum_ij |W_h[i, j]|``, or
    None when both strengths are 0 (the penalty is then not computed at all,
    so unregularized training is bit for bit what it was without it)."""
    terms = []
    if config.nuclear_lambda > 0:
        # An update can overflow a network's W_h to inf, where the SVD fails to
        # converge and raises: such a network gets a NaN penalty (so the
        # training loop marks it diverged) and the SVD sees zeros instead.
        finite = w_h_kxnxn.flatten(1).isfinite().all(1)
        safe = torch.where(finite[:, None, None], w_h_kxnxn, 0.0)
        # svdvals has a stable gradient even at repeated singular values.
        nuclear = torch.linalg.svdvals(safe).sum(-1)
        nuclear = torch.where(finite, nuclear, torch.nan)
        terms.append(config.nuclear_lambda * nuclear)
    if config.l1_lambda > 0:
        terms.append(config.l1_lambda * w_h_kxnxn.abs().flatten(1).sum(1))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def train_ensemble(
    model: Ensemble,
    task,
    config: TrainConfig,
    threshold: float | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train every network of ``model`` on ``task`` until it converges (plus
    patience), diverges or runs out of epochs. ``threshold`` defaults to the
    task's. Returns the losses, flags and initial and final weights."""
    threshold = task.threshold if threshold is None else threshold
    check_range("train", "threshold", threshold, 0.0, low_open=True)
    device = model.w_h.device
    k_all = model.n_networks
    initial = model.state_tensors()
    trained_names = model.config.trained_names
    params = {name: getattr(model, name) for name in trained_names}
    base_lr = config.lr * model.config.lr_scale  # eta = gamma * eta_0 under muP
    lr = torch.full((k_all,), base_lr, dtype=torch.float64, device=device)
    adam = EnsembleAdam(params, lr, config.adam_betas, config.adam_eps)
    plateau = EnsemblePlateau(lr, config.plateau_factor, config.plateau_patience)
    gens = [torch.Generator().manual_seed(derive_seeds(s)[1]) for s in model.seeds]

    n_steps = config.max_epochs * config.steps_per_epoch
    step_loss = np.full((k_all, n_steps), np.nan)
    epoch_loss = np.full((k_all, config.max_epochs), np.nan)
    converged_epoch = np.full(k_all, -1)
    epochs_trained = np.zeros(k_all, dtype=int)
    diverged = np.zeros(k_all, dtype=bool)
    active = np.ones(k_all, dtype=bool)
    # Nothing a step's run returns is kept past its update.
    workspace = Workspace()
    start = time.perf_counter()

    bar = tqdm(
        range(config.max_epochs), desc="epochs", disable=not progress, leave=False
    )
    for epoch in bar:
        index_np = np.flatnonzero(active)
        for s in range(config.steps_per_epoch):
            index = torch.as_tensor(index_np, device=device)
            batches = [task.sample(config.batch_size, gens[k]) for k in index_np]
            inputs = torch.stack([b.inputs for b in batches]).to(device)
            targets = torch.stack([b.targets for b in batches]).to(device)
            mask = torch.stack([b.mask for b in batches]).to(device)
            sub = model.weights(index)
            outputs, _ = model(inputs, sub, workspace)
            losses = masked_mse(outputs, targets, mask)  # [net]
            objective = losses
            penalty = regularization(sub["w_h"], config)
            if penalty is not None:
                objective = losses + penalty
            # Summing keeps each network's gradient that of its own objective.
            grads = torch.autograd.grad(
                objective.sum(), [sub[name] for name in trained_names]
            )
            grads = dict(zip(trained_names, grads, strict=True))
            if config.clip_grad_norm > 0:
                clip_per_network(grads, config.clip_grad_norm)
            loss_np = losses.detach().cpu().double().numpy()
            # A finite loss can still give an overflowing gradient.
            finite_grad = torch.stack(
                [g.flatten(1).isfinite().all(1) for g in grads.values()]
            ).all(0)
            bad = ~np.isfinite(loss_np) | ~finite_grad.cpu().numpy()
            if bad.any():
                # Freeze diverged networks before their update touches them.
                for k in index_np[bad]:
                    log.warning(
                        "network %d (seed %d) diverged at epoch %d",
                        k,
                        model.seeds[k],
                        epoch,
                    )
                diverged[index_np[bad]] = True
                active[index_np[bad]] = False
                keep = ~bad
                grads = {
                    n: g[torch.as_tensor(keep, device=device)] for n, g in grads.items()
                }
                index_np = index_np[keep]
                index = torch.as_tensor(index_np, device=device)
                loss_np = loss_np[keep]
            if index_np.size:
                adam.step(grads, index)
            step_loss[index_np, epoch * config.steps_per_epoch + s] = loss_np
            if not index_np.size:
                break
        epoch_rows = step_loss[
            index_np,
            epoch * config.steps_per_epoch : (epoch + 1) * config.steps_per_epoch,
        ]
        epoch_loss[index_np, epoch] = epoch_rows.mean(axis=1)
        epochs_trained[index_np] = epoch + 1
        plateau.step(epoch_loss[:, epoch], index_np)
        for k in index_np:
            if converged_epoch[k] < 0 and epoch_loss[k, epoch] < threshold:
                converged_epoch[k] = epoch
            if (
                converged_epoch[k] >= 0
                and epoch - converged_epoch[k] >= config.patience
            ):
                active[k] = False
        bar.set_postfix(done=int((~active).sum()), of=k_all)
        if not active.any():
            break
    bar.close()
    converged = (converged_epoch >= 0) & ~diverged
    wall = time.perf_counter() - start
    log.info(
        "trained %d networks in %.1f s: %d converged, %d diverged",
        k_all,
        wall,
        converged.sum(),
        diverged.sum(),
    )
    return TrainResult(
        final=model.state_tensors(),
        initial=initial,
        step_loss=step_loss,
        epoch_loss=epoch_loss,
        converged=converged,
        diverged=diverged,
        converged_epoch=converged_epoch,
        epochs_trained=epochs_trained,
        final_lr=lr.cpu().numpy(),
        info={"wall_time_s": wall, "device": str(device), "threshold": threshold},
    )


__all__ = [
    "TrainConfig",
    "TrainResult",
    "train_ensemble",
    "EnsembleAdam",
    "EnsemblePlateau",
    "clip_per_network",
    "regularization",
]

"""Where training, the store and the measures meet.

A :class:`Condition` (task, its config, architecture, training, seeds) goes
in; a trained ensemble, or one of its measures, comes out: loaded from the
store when it is there, computed and saved when it is not. Notebooks and the
sweep call these functions; the measures themselves only ever see arrays.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from degen.config import ConfigError, from_dict, to_dict
from degen.metrics import behavior as behavior_metrics
from degen.metrics import dynamics as dsa
from degen.metrics import learning as learning_metrics
from degen.metrics import representation as svcca
from degen.metrics import weights as wdist
from degen.model import Ensemble, ModelConfig, resolve_device
from degen.profile import EvalConfig, ProbeConfig, Profile, apply_factor, repo_root
from degen.store import Store
from degen.tasks import TASKS, Batch, make_task, task_config
from degen.train import TrainConfig, train_ensemble

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condition:
    """One ensemble to train: everything that decides its networks."""

    task: str
    task_config: object  # the task's frozen config
    model: ModelConfig
    train: TrainConfig
    seeds: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "task_config": to_dict(self.task_config),
            "model": to_dict(self.model),
            "train": to_dict(self.train),
            "seeds": list(self.seeds),
        }

    @classmethod
    def from_dict(cls, values: dict) -> Condition:
        return cls(
            task=values["task"],
            task_config=task_config(values["task"], values["task_config"]),
            model=from_dict(ModelConfig, values["model"]),
            train=from_dict(TrainConfig, values["train"]),
            seeds=tuple(values["seeds"]),
        )

    def make_task(self):
        return TASKS[self.task][1](self.task_config)


def default_store() -> Store:
    """``$DEGEN_RESULTS`` if set, else ``results/`` at the repository root
    (found from the working directory), else ``./results``."""
    if "DEGEN_RESULTS" in os.environ:
        folder = os.environ["DEGEN_RESULTS"]
        if not folder.strip():
            raise ConfigError(
                "DEGEN_RESULTS is set but empty; set it to the results folder "
                "or unset it to use results/ in the repository"
            )
        if Path(folder).exists() and not Path(folder).is_dir():
            raise ConfigError(
                f"DEGEN_RESULTS = {folder!r} is a file; it must name a folder "
                "(it is created if missing)"
            )
        return Store(folder)
    root = repo_root() or Path.cwd()
    return Store(root / "results")


def condition(profile: Profile, task: str, value, factor: str = "complexity"):
    """The condition of ``profile`` with ``factor`` of ``task`` set to ``value``."""
    spec = profile.factor(task, factor)  # validates task and factor
    config, model, train = apply_factor(
        task,
        profile.tasks[task].config,
        profile.model,
        profile.train_for(task),
        spec,
        value,
        where=f"tasks.{task}.{factor}",
    )
    return Condition(task, config, model, train, profile.seeds_for(task, factor))


def conditions(profile: Profile, task: str, factor: str = "complexity"):
    """One condition per swept value, in the profile's order."""
    return [condition(profile, task, v, factor) for v in profile.values(task, factor)]


@dataclass
class Trained:
    """A trained ensemble as loaded from the store (weights on the CPU)."""

    condition: Condition
    model: Ensemble
    initial: dict[str, torch.Tensor]
    arrays: dict[str, np.ndarray]
    meta: dict
    key: str

    @property
    def usable(self) -> np.ndarray:
        """Networks that reached the threshold and did not diverge: ``[net]``."""
        return self.arrays["converged"] & ~self.arrays["diverged"]

    @property
    def n_usable(self) -> int:
        return int(self.usable.sum())


def get_trained(
    cond: Condition,
    store: Store | None = None,
    device: str | None = None,
    progress: bool = False,
) -> Trained:
    """The trained ensemble of ``cond``: from the store, or trained and saved.

    ``device`` defaults to ``$DEGEN_DEVICE`` or "auto" (CUDA when present).
    """
    store = store or default_store()
    device = device or os.environ.get("DEGEN_DEVICE", "auto")
    task = cond.make_task()

    def compute():
        dev = resolve_device(device)
        model = Ensemble(cond.model, task.n_inputs, task.n_outputs, cond.seeds)
        model.to(dev)
        result = train_ensemble(model, task, cond.train, progress=progress)
        tensors = dict(result.final)
        tensors.update({f"initial.{k}": v for k, v in result.initial.items()})
        meta = {"device": str(dev), **result.info}
        return {"tensors": tensors, "arrays": result.arrays(), "meta": meta}

    entry = store.get_or_compute("ensemble", cond.to_dict(), compute)
    model = Ensemble(cond.model, task.n_inputs, task.n_outputs, cond.seeds)
    final = {k: v for k, v in entry.tensors.items() if not k.startswith("initial.")}
    model.load_state_tensors(final)
    initial = {
        k.removeprefix("initial."): v
        for k, v in entry.tensors.items()
        if k.startswith("initial.")
    }
    return Trained(cond, model, initial, entry.arrays, entry.meta, entry.key)


def evaluation_batch(task, eval_config: EvalConfig, stream: int = 0) -> Batch:
    """The fixed trials every network is measured on; ``stream`` picks an
    independent second sample (the same-network null uses stream 1)."""
    seed = np.random.SeedSequence([eval_config.seed, stream]).generate_state(1)[0]
    gen = torch.Generator().manual_seed(int(seed))
    return task.sample(eval_config.n_trials, gen)


def _cached(store: Store, kind: str, config: dict, compute) -> dict:
    entry = store.get_or_compute(kind, config, compute)
    return {**entry.arrays, "meta": entry.meta}


def behavior(trained: Trained, eval_config: EvalConfig, store: Store | None = None):
    """OOD loss of every network, and the population s.d. and mean over the
    usable ones (see :mod:`degen.metrics.behavior`)."""
    store = store or default_store()
    config = {"ensemble": trained.key, "eval": to_dict(eval_config)}

    def compute():
        start = time.perf_counter()
        ood = trained.condition.make_task().ood()
        batch = evaluation_batch(ood, eval_config)
        outputs, _ = trained.model.run(batch.inputs)
        losses = behavior_metrics.mse_per_network(
            outputs.numpy(), batch.targets.numpy(), batch.mask.numpy()
        )
        usable = trained.usable
        summary = behavior_metrics.degeneracy(losses[usable])
        meta = {"wall_time_s": time.perf_counter() - start, **summary}
        return {"arrays": {"ood_loss": losses, "usable": usable}, "meta": meta}

    _warn_if_too_few(trained, "the behavioral spread")
    return _cached(store, "behavior", config, compute)


def hidden_states(trained: Trained, eval_config: EvalConfig, stream: int = 0):
    """Hidden states of every network on the fixed trials: ``[net, batch, time, n]``."""
    batch = evaluation_batch(trained.condition.make_task(), eval_config, stream)
    _, hidden = trained.model.run(batch.inputs)
    return hidden.numpy()


def dynamics(
    trained: Trained,
    eval_config: EvalConfig,
    dsa_config: dsa.DSAConfig,
    store: Store | None = None,
):
    """DSA distances between the usable networks, the same-network null and
    a 2-D MDS embedding (see :mod:`degen.metrics.dynamics`)."""
    store = store or default_store()
    config = {
        "ensemble": trained.key,
        "eval": to_dict(eval_config),
        "dsa": to_dict(dsa_config),
    }

    def compute():
        start = time.perf_counter()
        usable = trained.usable
        states = hidden_states(trained, eval_config, 0)[usable]
        states_b = hidden_states(trained, eval_config, 1)[usable]
        if states.shape[0] < 2:
            k = states.shape[0]
            nan = np.full((k, k), np.nan)
            arrays = {
                "distances": nan,
                "null": np.full(k, np.nan),
                "mds": np.full((k, 2), np.nan),
                "fit_loss": nan,
            }
        else:
            result = dsa.dsa(states, dsa_config)
            # The null compares each network's operator with the one fitted to
            # its second sample (same_network_null would refit the first).
            ops_b, _ = dsa.fit_operators(
                states_b,
                dsa_config.n_delays,
                dsa_config.delay_interval,
                dsa_config.rank,
            )
            null = dsa.procrustes_vf(result.operators, ops_b, dsa_config)
            arrays = {
                "distances": result.distances,
                "null": null[dsa_config.score],
                "mds": dsa.classical_mds(result.distances, 2),
                "fit_loss": result.fit_loss,
            }
        arrays["usable"] = usable
        return {"arrays": arrays, "meta": {"wall_time_s": time.perf_counter() - start}}

    _warn_if_too_few(trained, "DSA")
    return _cached(store, "dynamics", config, compute)


def representation(
    trained: Trained,
    eval_config: EvalConfig,
    config: svcca.SVCCAConfig,
    store: Store | None = None,
):
    """SVCCA distances (1 - mean canonical correlation) between the usable
    networks' hidden states on the fixed trials: where the states sit, up to
    a linear map, beside DSA's how they move (see
    :mod:`degen.metrics.representation`)."""
    store = store or default_store()
    key_config = {
        "ensemble": trained.key,
        "eval": to_dict(eval_config),
        "svcca": to_dict(config),
    }

    def compute():
        start = time.perf_counter()
        usable = trained.usable
        states = hidden_states(trained, eval_config, 0)[usable]
        if states.shape[0] < 2:
            k = states.shape[0]
            distances = np.full((k, k), np.nan)
        else:
            distances = svcca.svcca_distances(states, config)
        arrays = {"distances": distances, "usable": usable}
        return {"arrays": arrays, "meta": {"wall_time_s": time.perf_counter() - start}}

    _warn_if_too_few(trained, "SVCCA")
    return _cached(store, "representation", key_config, compute)


def weights(
    trained: Trained,
    config: wdist.WeightDistanceConfig,
    store: Store | None = None,
):
    """Permutation-invariant distances between the usable networks' recurrent
    weights (see :mod:`degen.metrics.weights`)."""
    store = store or default_store()
    key_config = {"ensemble": trained.key, "weights": to_dict(config)}

    def compute():
        start = time.perf_counter()
        usable = trained.usable
        w_kxnxn = trained.model.w_h.detach().numpy()[usable]
        if w_kxnxn.shape[0] < 2:
            k = w_kxnxn.shape[0]
            distances = np.full((k, k), np.nan)
        else:
            distances = wdist.weight_distance_matrix(w_kxnxn, config)
        arrays = {"distances": distances, "usable": usable}
        return {"arrays": arrays, "meta": {"wall_time_s": time.perf_counter() - start}}

    _warn_if_too_few(trained, "the weight distance")
    return _cached(store, "weights", key_config, compute)


def probe_batch(task, probe: ProbeConfig) -> tuple[Batch, np.ndarray]:
    """The fixed probe trials and the scored output entries the kernel is
    built on: indices ``[m, 3]`` of (trial, step, output), at most
    ``probe.max_entries`` of them, evenly spaced over the scored entries."""
    gen = torch.Generator().manual_seed(probe.seed)
    batch = task.sample(probe.n_trials, gen)
    scored_mx3 = np.argwhere(batch.mask.numpy() > 0)
    if len(scored_mx3) > probe.max_entries:
        keep = np.linspace(0, len(scored_mx3) - 1, probe.max_entries)
        scored_mx3 = scored_mx3[np.round(keep).astype(int)]
    return batch, scored_mx3


def learning(trained: Trained, probe: ProbeConfig, store: Store | None = None):
    """Feature-learning diagnostics of every network: the recurrent weights'
    change ``||W_h(T) - W_h(0)||_F`` and the alignment of the empirical NTK at
    the end of training with the one at the start, on the probe batch (see
    :mod:`degen.metrics.learning`)."""
    store = store or default_store()
    config = {"ensemble": trained.key, "probe": to_dict(probe)}

    def compute():
        start = time.perf_counter()
        batch, entries_mx3 = probe_batch(trained.condition.make_task(), probe)
        b, t, o = (torch.as_tensor(entries_mx3[:, i]) for i in range(3))

        def scored_outputs(params, inputs_bxtxi):
            # The scored entries as [net, 1, m, 1]: one kernel row per entry.
            outputs = trained.model(inputs_bxtxi, params)[0]
            return outputs[:, b, t, o][:, None, :, None]

        final = trained.model.state_tensors()
        change = learning_metrics.weight_change(trained.initial["w_h"], final["w_h"])
        alignment = learning_metrics.ntk_alignment(
            trained.initial, final, batch.inputs, forward=scored_outputs
        )
        arrays = {
            "weight_change": change,
            "kernel_alignment": alignment,
            "usable": trained.usable,
        }
        meta = {"wall_time_s": time.perf_counter() - start, "entries": len(b)}
        return {"arrays": arrays, "meta": meta}

    _warn_if_too_few(trained, "the learning diagnostics' spread")
    return _cached(store, "learning", config, compute)


def _warn_if_too_few(trained: Trained, what: str) -> None:
    """Warn, at the caller of a measure, when it will be NaN."""
    if trained.n_usable >= 2:
        return
    warnings.warn(
        f"only {trained.n_usable} of {len(trained.usable)} networks of "
        f"{trained.condition.task} {_label(trained.condition)} converged; "
        f"{what} needs two, so it is NaN (train longer or raise the threshold)",
        stacklevel=3,
    )


def _label(cond: Condition) -> str:
    """A condition's complexity knob, and the model and regularizer settings
    that differ from the standard, unregularized model, for logs and warnings."""
    knob = TASKS[cond.task][1].complexity
    parts = [f"{knob}={getattr(cond.task_config, knob)}"]
    if cond.model.parameterization != "standard":
        parts.append(f"{cond.model.parameterization} gamma={cond.model.gamma:g}")
    parts.append(f"n={cond.model.n_hidden}")
    for name in ("nuclear_lambda", "l1_lambda"):
        if getattr(cond.train, name):
            parts.append(f"{name}={getattr(cond.train, name):g}")
    return " ".join(parts)


def dsa_config_for(profile: Profile, task: str) -> dsa.DSAConfig:
    """The profile's DSA settings with the task's overrides applied."""
    sweep = profile._sweep(task)  # names the profile's tasks if it lacks one
    values = {**dataclasses.asdict(profile.dynamics), **sweep.dynamics}
    return from_dict(dsa.DSAConfig, values, where=f"tasks.{task}.dynamics")


def weights_config_for(
    profile: Profile, task: str, factor: str = "complexity"
) -> wdist.WeightDistanceConfig:
    """The profile's weight-distance settings along ``factor`` of ``task``.
    Along the width (``model.n_hidden``) distances are divided by the number
    of matrix entries, as PAPER.md does when widths differ, so that values
    at different widths are compared on one scale."""
    config = profile.weights
    if profile.factor(task, factor).field == "model.n_hidden":
        config = dataclasses.replace(config, normalize=True)
    return config


__all__ = [
    "Condition",
    "Trained",
    "behavior",
    "condition",
    "conditions",
    "default_store",
    "dsa_config_for",
    "dynamics",
    "evaluation_batch",
    "get_trained",
    "hidden_states",
    "learning",
    "make_task",
    "probe_batch",
    "representation",
    "weights",
    "weights_config_for",
]

"""Representational similarity of hidden states by SVCCA (Raghu et al. 2017).

Per network, the hidden states of every trial and step are pooled into one
``[samples, units]`` matrix (sample ``j`` is the same trial and step for every
network), each unit is centred, and an SVD keeps the leading directions:
the fewest that explain ``variance_kept`` of the variance, or a fixed
``n_components``. Two networks are then compared by canonical correlation
analysis (CCA) of their reduced states. The reduced states of a network span
the same sample-space subspace as its leading left singular vectors ``Q``
(orthonormal columns), so the canonical correlations are the singular values
of ``Q_a^T Q_b``; the SVCCA similarity is their mean over the
``min(p_a, p_b)`` of them.

CCA is invariant to invertible linear maps of either network's kept states,
so a network and a linear transform of it score 1 whenever the transform
keeps the same leading subspace (always, when every direction is kept).

Inputs may be NumPy arrays or torch tensors and are never modified. Axis
order: ``[net, batch, time, units]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from degen.config import ConfigError, check_range


class RankWarning(UserWarning):
    """Fewer directions vary than SVCCA was asked to keep."""


@dataclass(frozen=True)
class SVCCAConfig:
    """How many directions of each network's hidden states SVCCA keeps.

    variance_kept: keep the fewest leading directions whose variance adds up
        to at least this fraction of the total (Raghu et al. kept 0.99).
    n_components: when > 0, keep exactly this many directions instead.
    """

    variance_kept: float = 0.99
    n_components: int = 0

    def __post_init__(self) -> None:
        owner = "SVCCAConfig"
        check_range(owner, "variance_kept", self.variance_kept, 0.0, 1.0, low_open=True)
        if isinstance(self.n_components, bool) or not isinstance(
            self.n_components, int
        ):
            raise ConfigError(
                f"{owner}.n_components = {self.n_components!r}; it must be an "
                "integer (0 to use variance_kept)"
            )
        check_range(owner, "n_components", self.n_components, 0)


def _samples(states, name: str) -> tuple[np.ndarray, tuple[int, int]]:
    """A float64 copy of ``[batch, time, units]`` states as ``[samples, units]``,
    and their (batch, time)."""
    array = np.array(
        states.detach().cpu().numpy() if isinstance(states, torch.Tensor) else states,
        dtype=np.float64,
        copy=True,
    )
    if array.ndim != 3:
        raise ValueError(
            f"{name} has shape {array.shape}; expected [batch, time, units]"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")
    return array.reshape(-1, array.shape[-1]), array.shape[:2]


def _networks(states) -> list[np.ndarray]:
    """Per-network ``[samples, units]`` matrices from ``[net, batch, time,
    units]`` or from a sequence of ``[batch, time, units_k]`` arrays (widths
    may differ; trials and steps may not)."""
    if isinstance(states, (np.ndarray, torch.Tensor)):
        if states.ndim != 4:
            raise ValueError(
                f"states have shape {tuple(states.shape)}; expected "
                "[net, batch, time, units] or a list of [batch, time, units]"
            )
        states = list(states)
    elif not isinstance(states, Sequence) or isinstance(states, str):
        raise ValueError(
            f"states is a {type(states).__name__}; expected an array [net, batch, "
            "time, units] or a list of [batch, time, units] arrays"
        )
    nets, shapes = [], set()
    for k, s in enumerate(states):
        samples, shape = _samples(s, f"states[{k}]")
        nets.append(samples)
        shapes.add(shape)
    if len(shapes) > 1:
        raise ValueError(
            f"networks' states have (batch, time) {sorted(shapes)}; SVCCA pairs "
            "samples across networks, so every network needs the same trials"
        )
    return nets


def leading_basis(samples_mxn: np.ndarray, config: SVCCAConfig) -> np.ndarray:
    """Orthonormal ``[samples, p]`` basis of the kept directions of centred
    states (their leading left singular vectors)."""
    centred = samples_mxn - samples_mxn.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    # Directions at rounding level carry no variance; they are never kept.
    tol = s[0] * max(centred.shape) * np.finfo(np.float64).eps if s.size else 0.0
    rank = int((s > tol).sum())
    if config.n_components > 0:
        p = config.n_components
        if p > rank:
            warnings.warn(
                f"n_components = {p} but only {rank} directions of the hidden "
                f"states vary; keeping {rank}",
                RankWarning,
                stacklevel=3,
            )
            p = rank
    elif rank == 0:
        p = 0
    else:
        fraction = np.cumsum(s[:rank] ** 2) / np.sum(s[:rank] ** 2)
        # The small tolerance lets variance_kept = 1 keep every varying direction.
        p = int(np.searchsorted(fraction, config.variance_kept - 1e-12) + 1)
    return u[:, :p]


def _check_widths(nets: list[np.ndarray], config: SVCCAConfig) -> None:
    narrow = min(net.shape[1] for net in nets)
    if config.n_components > narrow:
        raise ValueError(
            f"n_components = {config.n_components} exceeds the narrowest "
            f"network's {narrow} units; keep at most {narrow}"
        )
    if nets[0].shape[0] < 2:
        raise ValueError(
            f"states hold {nets[0].shape[0]} sample(s); SVCCA needs at least 2 "
            "(trials x steps)"
        )


def svcca_matrix(states, config: SVCCAConfig | None = None) -> np.ndarray:
    """Similarity, 1 means the same kept subspace up to an invertible linear
    map, near 0 unrelated: mean SVCCA correlation of every pair, ``[k, k]``.

    ``states``: ``[net, batch, time, units]``, or a list of ``[batch, time,
    units_k]`` arrays for networks of different widths. The matrix is
    symmetric with ones on the diagonal; a network whose states do not vary
    gets NaN, with a warning. One SVD per network, then one matrix product
    per network against all later ones. ``config`` defaults to
    ``SVCCAConfig()``.
    """
    config = SVCCAConfig() if config is None else config
    if not isinstance(config, SVCCAConfig):
        raise ConfigError(f"config is a {type(config).__name__}; pass an SVCCAConfig")
    nets = _networks(states)
    if not nets:
        raise ValueError("states hold no network; SVCCA needs at least one")
    _check_widths(nets, config)
    bases = [leading_basis(net, config) for net in nets]
    k = len(bases)
    dead = [i for i, b in enumerate(bases) if b.shape[1] == 0]
    if dead:
        warnings.warn(
            f"the hidden states of networks {dead} do not vary; their SVCCA "
            "similarity is undefined (NaN)",
            stacklevel=2,
        )
    sim = np.eye(k)
    for i in range(k - 1):
        later = bases[i + 1 :]
        # Q_i^T [Q_{i+1}, ..., Q_{k-1}], split back into one block per pair.
        cross = bases[i].T @ np.concatenate(later, axis=1)
        cuts = np.cumsum([b.shape[1] for b in later])[:-1]
        for j, block in enumerate(np.split(cross, cuts, axis=1), start=i + 1):
            sim[i, j] = sim[j, i] = _mean_correlation(block)
    for i in dead:
        sim[i, :] = sim[:, i] = np.nan
    return sim


def _mean_correlation(block: np.ndarray) -> float:
    if min(block.shape) == 0:
        return float("nan")
    # Rounding can push a canonical correlation a hair above 1.
    return float(np.clip(np.linalg.svd(block, compute_uv=False), 0.0, 1.0).mean())


def svcca(states_a, states_b, config: SVCCAConfig | None = None) -> float:
    """Similarity, 1 means the same kept subspace up to an invertible linear
    map: mean SVCCA correlation of two networks' ``[batch, time, units]``
    states (widths may differ)."""
    return float(svcca_matrix([states_a, states_b], config)[0, 1])


def svcca_distances(states, config: SVCCAConfig | None = None) -> np.ndarray:
    """Distance, 0 means identical up to an invertible linear map: ``1 -``
    :func:`svcca_matrix`, ``[k, k]``, symmetric with a zero diagonal."""
    return 1.0 - svcca_matrix(states, config)


__all__ = [
    "RankWarning",
    "SVCCAConfig",
    "leading_basis",
    "svcca",
    "svcca_distances",
    "svcca_matrix",
]

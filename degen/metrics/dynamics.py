"""Dynamical Similarity Analysis (DSA; Ostrow et al. 2023) across RNN ensembles.

Per network, hidden-state trajectories are delay-embedded, reduced to ``rank``
coordinates by an SVD and summarised by a linear next-step operator ``A``
(a HAVOK / DMD model). Two networks are then compared by the Procrustes
distance over vector fields, ``min over orthogonal C of ||A - C B C^T||``
on unit-norm operators, with both components of O(r) (reflections too).

Inputs may be NumPy arrays or torch tensors; the work is done in torch
(float64 on the CPU unless told otherwise) and results come back as NumPy.
Inputs are never modified. Axis order: ``[net, batch, time, units]``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from degen.config import ConfigError, check_choice, check_range

SCORES = ("angular", "euclidean")


class RankWarning(UserWarning):
    """The requested DMD rank exceeds the numerical rank of a delay embedding."""


@dataclass(frozen=True)
class DSAConfig:
    """Settings of DSA; fixed per task and saved beside every result."""

    n_delays: int = 10  # delay-embedding depth (1 = no delays)
    delay_interval: int = 1  # steps between successive delays
    rank: int = 10  # DMD rank r: operators are r x r
    score: str = "angular"  # "angular" (radians, [0, pi]) | "euclidean" ([0, 2])
    n_iters: int = 300  # Adam steps of the Procrustes fit per start
    lr: float = 0.05  # peak Adam step on the rotation generator (cosine decay)
    n_restarts: int = 2  # random orthogonal starts per component of O(r)
    seed: int = 0  # seeds the random starts

    def __post_init__(self) -> None:
        owner = "DSAConfig"
        ints = ("n_delays", "delay_interval", "rank", "n_iters", "n_restarts", "seed")
        for name in ints:
            _check_int(owner, name, getattr(self, name))
        check_range(owner, "n_delays", self.n_delays, 1)
        check_range(owner, "delay_interval", self.delay_interval, 1)
        check_range(owner, "rank", self.rank, 1)
        check_choice(owner, "score", self.score, SCORES)
        check_range(owner, "n_iters", self.n_iters, 0)
        check_range(owner, "lr", self.lr, 0.0, low_open=True)
        check_range(owner, "n_restarts", self.n_restarts, 0)
        check_range(owner, "seed", self.seed, 0)


@dataclass(frozen=True)
class DSAResult:
    """DSA over one ensemble of k networks."""

    distances: np.ndarray  # [k, k] in config.score; symmetric, zero diagonal
    operators: np.ndarray  # [k, r, r] fitted next-step operators
    fit_residual: np.ndarray  # [k] relative residual of the next-step fit
    fit_loss: np.ndarray  # [k, k] ||A/|A| - C B/|B| C^T||_F^2 at the best C
    config: DSAConfig


def _check_int(owner: str, name: str, value: object) -> None:
    # bool is an int subclass, but DSAConfig(rank=True) is surely a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(
            f"{owner}.{name} = {value!r} has type {type(value).__name__}; expected int"
        )


def _as_tensor(x, name: str, axes: str, dtype, device) -> torch.Tensor:
    """A private copy of ``x`` on ``device`` as ``dtype``, after shape checks."""
    tensor = torch.as_tensor(x).detach()
    if tensor.ndim != len(axes.split(",")):
        raise ValueError(
            f"{name} must have axes [{axes}], got shape {tuple(tensor.shape)}"
        )
    # copy=True: torch.as_tensor shares memory with NumPy input, and nothing
    # below may write into the caller's array.
    tensor = tensor.to(device=device, dtype=dtype, copy=True)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or inf")
    return tensor


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _check_embedding(owner: str, n_delays, delay_interval) -> None:
    _check_int(owner, "n_delays", n_delays)
    _check_int(owner, "delay_interval", delay_interval)
    check_range(owner, "n_delays", n_delays, 1)
    check_range(owner, "delay_interval", delay_interval, 1)


# ---------------------------------------------------------------------------
# Delay embedding and the per-network operator fit


def min_trial_steps(n_delays: int, delay_interval: int) -> int:
    """The shortest trial the delay embedding can use: its window spans
    ``(n_delays - 1) * delay_interval + 1`` steps, and the next-step fit
    needs 2 embedded steps per trial."""
    return (n_delays - 1) * delay_interval + 2


def _embed(states_xtxn: torch.Tensor, n_delays: int, delay_interval: int):
    """Delay-embed along the time axis (-2), trial by trial: [..., t', n*d]."""
    n_steps, n_units = states_xtxn.shape[-2:]
    span = (n_delays - 1) * delay_interval
    n_embedded = n_steps - span
    if n_steps < min_trial_steps(n_delays, delay_interval):
        raise ConfigError(
            f"trials of {n_steps} steps are too short for n_delays={n_delays} "
            f"and delay_interval={delay_interval}: the embedding spans "
            f"{span + 1} steps and leaves {max(n_embedded, 0)} embedded steps "
            "per trial, but the next-step fit needs at least 2; use trials of "
            f"at least {span + 2} steps, or fewer or closer delays"
        )
    # unfold adds a window axis: [..., t', n, span + 1]; keep every tau-th step.
    windows = states_xtxn.unfold(-2, span + 1, 1)[..., ::delay_interval]
    # [..., t', d, n] -> [..., t', d*n], so the vector is [h_t, h_t+tau, ...].
    windows = windows.transpose(-1, -2)
    return windows.reshape(*states_xtxn.shape[:-2], n_embedded, n_delays * n_units)


def delay_embed(
    states_bxtxn, n_delays: int, delay_interval: int, *, dtype=torch.float64
) -> np.ndarray:
    """Hankel (delay) embedding of each trial, ``[b, t - (d-1)*tau, n*d]``.

    Row ``t`` of a trial is ``[h_t, h_{t+tau}, ..., h_{t+(d-1)tau}]``; trials
    are never mixed.
    """
    _check_embedding("delay_embed", n_delays, delay_interval)
    states = _as_tensor(states_bxtxn, "states", "batch, time, units", dtype, "cpu")
    return _numpy(_embed(states, n_delays, delay_interval))


def _fix_signs(vh_kxqxm: torch.Tensor) -> torch.Tensor:
    """Make the largest-magnitude entry of each singular vector positive, so
    the fitted operators do not depend on the SVD routine's sign choice."""
    idx = vh_kxqxm.abs().argmax(-1, keepdim=True)
    sign = torch.sign(torch.gather(vh_kxqxm, -1, idx))
    return vh_kxqxm * torch.where(sign == 0, torch.ones_like(sign), sign)


def _reduce(samples_kxsxm: torch.Tensor, rank: int):
    """Coordinates of the samples on their leading ``rank`` right-singular
    vectors, zero beyond each network's numerical rank: ([k, s, r], [k])."""
    n_samples, n_features = samples_kxsxm.shape[-2:]
    # The right-singular vectors of X equal those of R in X = QR; taking the
    # SVD of the small R avoids holding U ([k, s, m]) in memory.
    small = samples_kxsxm
    if n_samples > n_features:
        small = torch.linalg.qr(samples_kxsxm, mode="r").R
    sv_kxq, vh_kxqxm = torch.linalg.svd(small, full_matrices=False)[1:]
    vh_kxqxm = _fix_signs(vh_kxqxm)
    # numpy.linalg.matrix_rank's tolerance; all-zero states give rank 0.
    eps = torch.finfo(samples_kxsxm.dtype).eps
    tol = sv_kxq[:, :1] * max(n_samples, n_features) * eps
    num_rank_k = (sv_kxq > tol).sum(-1)
    keep = min(rank, sv_kxq.shape[-1])
    coords = samples_kxsxm @ vh_kxqxm[:, :keep].transpose(-1, -2)
    coords = torch.nn.functional.pad(coords, (0, rank - keep))
    active_kxr = torch.arange(rank, device=coords.device) < num_rank_k[:, None]
    return coords * active_kxr[:, None, :], num_rank_k


def _fit_operators(states, n_delays, delay_interval, rank, stacklevel):
    """Batched fit on a tensor ``[k, b, t, n]``: (ops [k, r, r], residual [k])."""
    _check_embedding("fit_operators", n_delays, delay_interval)
    _check_int("fit_operators", "rank", rank)
    check_range("fit_operators", "rank", rank, 1)
    embedded = _embed(states, n_delays, delay_interval)  # [k, b, t', m]
    n_nets, n_trials, n_steps, n_features = embedded.shape
    # No centring: the model is v_{t+1} = A v_t without an offset, so a fixed
    # point away from the origin must stay in the data (as in DSA's HAVOK);
    # centring would bias A for any system whose mean is not 0.
    samples = embedded.reshape(n_nets, n_trials * n_steps, n_features)
    coords, num_rank_k = _reduce(samples, rank)
    coords = coords.reshape(n_nets, n_trials, n_steps, rank)
    # Transitions stay inside a trial: drop the last step / the first step.
    now = coords[:, :, :-1].reshape(n_nets, -1, rank)
    nxt = coords[:, :, 1:].reshape(n_nets, -1, rank)
    # Row form of v_{t+1} = A v_t is nxt = now @ A^T; pinv gives the
    # minimum-norm solution when coordinates are zero (rank-deficient).
    ops_t = torch.linalg.pinv(now) @ nxt
    active_kxr = torch.arange(rank, device=coords.device) < num_rank_k[:, None]
    ops = ops_t.transpose(-1, -2) * active_kxr[:, :, None] * active_kxr[:, None, :]
    err = torch.linalg.vector_norm(nxt - now @ ops.transpose(-1, -2), dim=(1, 2))
    size = torch.linalg.vector_norm(nxt, dim=(1, 2))
    residual = torch.where(size > 0, err / torch.where(size > 0, size, 1), 0.0)
    short = (num_rank_k < rank).nonzero().flatten().tolist()
    if short:
        warnings.warn(
            f"rank={rank} exceeds the numerical rank of the delay embedding of "
            f"network(s) {short} (numerical rank {num_rank_k[short].tolist()}); "
            "their operators are padded with zero rows and columns. Lower "
            "`rank` or add delays so every network fills r coordinates.",
            RankWarning,
            stacklevel=stacklevel,
        )
    return ops, residual


def fit_operators(
    states_kxbxtxn,
    n_delays: int,
    delay_interval: int,
    rank: int,
    *,
    dtype=torch.float64,
    device="cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Next-step operators ``[k, r, r]`` and relative fit residuals ``[k]``.

    Per network: delay-embed every trial, project all embedded samples onto
    their leading ``rank`` right-singular vectors and fit ``v_{t+1} = A v_t``
    by least squares over all within-trial transitions. The residual is
    ``||V_next - A V_now||_F / ||V_next||_F`` (0 for all-zero states).
    Warns (RankWarning) and pads with zeros where ``rank`` exceeds a
    network's numerical rank.
    """
    axes = "net, batch, time, units"
    states = _as_tensor(states_kxbxtxn, "states", axes, dtype, device)
    ops, residual = _fit_operators(states, n_delays, delay_interval, rank, 3)
    return _numpy(ops), _numpy(residual)


def fit_operators_loop(
    states_kxbxtxn, n_delays: int, delay_interval: int, rank: int
) -> np.ndarray:
    """Slow reference for :func:`fit_operators` (NumPy, loops, no rank cap):
    operators ``[k, r, r]`` with the same sign convention."""
    states = np.asarray(states_kxbxtxn, dtype=np.float64)
    n_nets, n_trials, n_steps, _ = states.shape
    span = (n_delays - 1) * delay_interval
    ops = []
    for net in range(n_nets):
        trials = []
        for trial in range(n_trials):
            rows = [
                np.concatenate(
                    [
                        states[net, trial, t + j * delay_interval]
                        for j in range(n_delays)
                    ]
                )
                for t in range(n_steps - span)
            ]
            trials.append(np.stack(rows))
        basis = np.linalg.svd(np.concatenate(trials), full_matrices=False)[2][:rank]
        basis *= np.sign(basis[np.arange(rank), np.abs(basis).argmax(1)])[:, None]
        now = np.concatenate([tr[:-1] @ basis.T for tr in trials])
        nxt = np.concatenate([tr[1:] @ basis.T for tr in trials])
        ops.append(np.linalg.lstsq(now, nxt, rcond=None)[0].T)
    return np.stack(ops)


# ---------------------------------------------------------------------------
# Procrustes over vector fields


def _unit(ops_pxrxr: torch.Tensor) -> torch.Tensor:
    """Operators scaled to unit Frobenius norm; a zero operator stays zero."""
    norm_p = torch.linalg.matrix_norm(ops_pxrxr)
    safe = torch.where(norm_p > 0, norm_p, torch.ones_like(norm_p))
    return ops_pxrxr / safe[:, None, None]


def _vf_residual(a_px1xrxr, b_px1xrxr, c_pxsxrxr):
    """``F = B - C^T A C`` for every pair and start, [p, s, r, r].

    ``||F||_F = ||A - C B C^T||_F`` since C is orthogonal, and F also gives
    the gradient (see ``_lie_gradient``) with fewer products.
    """
    c_t = c_pxsxrxr.transpose(-1, -2)
    return b_px1xrxr - c_t @ a_px1xrxr @ c_pxsxrxr


def _spectral_starts(a_pxrxr, b_pxrxr) -> torch.Tensor:
    """Guesses of C from the eigenvectors of the symmetric parts, one in each
    component of O(r): [p, 2, r, r].

    If ``B = Q A Q^T`` and the symmetric part has distinct eigenvalues, then
    ``U_b = Q U_a S`` for a sign matrix S, and ``B~ = S A~ S``; the leading
    eigenvector of ``M = A~ * B~`` (elementwise, symmetric) has the signs of
    S up to a global sign, and ``U_a S U_b^T = Q^T`` exactly.
    """
    u_a = torch.linalg.eigh((a_pxrxr + a_pxrxr.transpose(-1, -2)) / 2)[1]
    u_b = torch.linalg.eigh((b_pxrxr + b_pxrxr.transpose(-1, -2)) / 2)[1]
    a_rot = u_a.transpose(-1, -2) @ a_pxrxr @ u_a
    b_rot = u_b.transpose(-1, -2) @ b_pxrxr @ u_b
    match = a_rot * b_rot
    lead_pxr = torch.linalg.eigh((match + match.transpose(-1, -2)) / 2)[1][..., -1]
    signs = torch.where(lead_pxr >= 0, 1.0, -1.0).to(a_pxrxr.dtype)
    # The other component: flip the sign the eigenvector is least sure about.
    weakest = torch.nn.functional.one_hot(lead_pxr.abs().argmin(-1), a_pxrxr.shape[-1])
    flipped = signs * (1 - 2 * weakest.to(signs.dtype))
    signs_px2xr = torch.stack([signs, flipped], 1)
    return u_a[:, None] @ torch.diag_embed(signs_px2xr) @ u_b[:, None].transpose(-1, -2)


def _random_starts(n_pairs, r, n_restarts, generator, dtype) -> torch.Tensor:
    """Haar-random orthogonal starts, n_restarts in each component: [p, 2n, r, r]."""
    gauss = torch.randn(
        n_pairs, 2, n_restarts, r, r, generator=generator, dtype=torch.float64
    )
    q, upper = torch.linalg.qr(gauss)
    # Sign fix of R's diagonal makes Q Haar-distributed.
    q = q * torch.sign(torch.diagonal(upper, dim1=-2, dim2=-1))[..., None, :]
    want = torch.tensor([1.0, -1.0], dtype=torch.float64)[None, :, None]
    flip = torch.where(torch.linalg.det(q) * want < 0, -1.0, 1.0)
    q = torch.cat([q[..., :1] * flip[..., None, None], q[..., 1:]], -1)
    return q.reshape(n_pairs, 2 * n_restarts, r, r).to(dtype)


def _starts(a_pxrxr, b_pxrxr, config: DSAConfig) -> torch.Tensor:
    """All starting rotations per pair: [p, 4 + 2 * n_restarts, r, r]."""
    n_pairs, r = a_pxrxr.shape[:2]
    eye = torch.eye(r, dtype=a_pxrxr.dtype, device=a_pxrxr.device)
    reflect = eye.clone()
    reflect[0, 0] = -1.0
    fixed = torch.stack([eye, reflect]).expand(n_pairs, 2, r, r)
    parts = [fixed, _spectral_starts(a_pxrxr, b_pxrxr)]
    if config.n_restarts:
        # Drawn on the CPU so the same seed gives the same starts on any device.
        generator = torch.Generator().manual_seed(config.seed)
        rand = _random_starts(n_pairs, r, config.n_restarts, generator, a_pxrxr.dtype)
        parts.append(rand.to(a_pxrxr.device))
    return torch.cat(parts, 1)


def _lie_gradient(b_px1xrxr, resid_pxsxrxr):
    """Gradient in S at S = 0 of ``||A - C' B C'^T||^2`` for
    ``C' = C expm(S - S^T)``, from ``F = B - C^T A C``: skew, [p, s, r, r].

    With ``C B C^T - A = C F C^T``, the gradient in C is
    ``G = 2 C (F B^T + F^T B)``; in S it is ``C^T G`` minus its transpose.
    """
    inner = resid_pxsxrxr @ b_px1xrxr.transpose(-1, -2)
    inner = inner + resid_pxsxrxr.transpose(-1, -2) @ b_px1xrxr
    return 2 * (inner - inner.transpose(-1, -2))


def _optimise(a_pxrxr, b_pxrxr, starts_pxsxrxr, config: DSAConfig):
    """Adam on the rotation generator from every start at once; the best
    iterate of the best start per pair: (loss [p], C [p, r, r]).

    Each step sets C <- C cay(K), K the (skew) Adam step from the gradient
    in S of L(C expm(S - S^T)) at S = 0, so C stays in the component of its
    start. Writing the gradient out (no autograd) and using the Cayley map
    for expm made a step about 7x faster than autograd through matrix_exp
    (1225 pairs of 10 x 10, i.e. an ensemble of 50 networks).
    """
    a_hat, b_hat = a_pxrxr[:, None], b_pxrxr[:, None]
    eye = torch.eye(a_pxrxr.shape[-1], dtype=a_pxrxr.dtype, device=a_pxrxr.device)
    c = starts_pxsxrxr.clone()
    mean, var = torch.zeros_like(c), torch.zeros_like(c)
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults
    best_loss, best_c = torch.full_like(c[..., 0, 0], math.inf), c
    for step in range(config.n_iters + 1):
        resid = _vf_residual(a_hat, b_hat, c)
        loss = resid.square().sum((-1, -2))
        better = loss < best_loss
        best_loss = torch.where(better, loss, best_loss)
        best_c = torch.where(better[..., None, None], c, best_c)
        if step == config.n_iters:
            break
        grad = _lie_gradient(b_hat, resid)
        # In place on this function's own buffers, never on the inputs.
        mean.mul_(beta1).add_(grad, alpha=1 - beta1)
        var.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        # Cosine decay: Adam with a constant step keeps hopping around the
        # minimum instead of settling into it.
        lr = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.n_iters))
        denom = (var / (1 - beta2 ** (step + 1))).sqrt_().add_(eps)
        # Elementwise Adam keeps the step skew (mean skew, denom symmetric);
        # cay(K) = (I - K/2)^-1 (I + K/2) is exactly orthogonal.
        half = mean / denom * (-0.5 * lr / (1 - beta1 ** (step + 1)))
        c = c @ torch.linalg.solve(eye - half, eye + half)
    pick = best_loss.argmin(1)
    rows = torch.arange(len(pick), device=pick.device)
    return best_loss[rows, pick], best_c[rows, pick]


def _procrustes(a_pxrxr, b_pxrxr, config: DSAConfig) -> dict:
    """Tensor version of :func:`procrustes_vf` (no checks, no conversion)."""
    a_hat, b_hat = _unit(a_pxrxr), _unit(b_pxrxr)
    loss, rotation = _optimise(a_hat, b_hat, _starts(a_hat, b_hat, config), config)
    euclidean = loss.clamp(min=0).sqrt()
    # The angle between A and C B C^T as 2 atan2(|A - CBC^T|, |A + CBC^T|):
    # equal to arccos(<A, C B C^T>) for unit operators but exact at both 0
    # and pi, where arccos and asin lose half the digits. A zero operator
    # comes out at pi/2 from any nonzero one, and two zero ones at 0.
    moved = rotation.transpose(-1, -2) @ a_hat @ rotation
    opposite = torch.linalg.matrix_norm(b_hat + moved)
    angular = 2 * torch.atan2(euclidean, opposite)
    return dict(euclidean=euclidean, angular=angular, rotation=rotation, loss=loss)


def _check_ops(ops, name: str, dtype, device) -> torch.Tensor:
    ops = _as_tensor(ops, name, "pair, r, r", dtype, device)
    if ops.shape[-1] != ops.shape[-2]:
        raise ValueError(f"{name} must be square operators, got {tuple(ops.shape)}")
    return ops


def _check_same_size(a, b) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"operators have different sizes ({a.shape[-1]} x {a.shape[-1]} and "
            f"{b.shape[-1]} x {b.shape[-1]}); DSA compares operators of one "
            "rank: fit every network with the same `rank`"
        )


def procrustes_vf(
    a_pxrxr, b_pxrxr, config: DSAConfig, *, dtype=torch.float64, device="cpu"
) -> dict[str, np.ndarray]:
    """Procrustes distance over vector fields per pair, 0 means identical.

    For unit-norm ``A`` and ``B``, ``C`` orthogonal (either determinant)
    minimising ``||A - C B C^T||_F``. Returns NumPy arrays: ``euclidean``
    ``[p]`` (that minimum, in [0, 2]), ``angular`` ``[p]`` (arccos of
    ``<A, C B C^T>`` at the best C, in [0, pi]), ``rotation`` ``[p, r, r]``
    (the best C) and ``loss`` ``[p]`` (the minimised squared norm). Two zero
    operators are at distance 0; a zero and a nonzero one at euclidean 1,
    angular pi/2.
    """
    a = _check_ops(a_pxrxr, "a", dtype, device)
    b = _check_ops(b_pxrxr, "b", dtype, device)
    _check_same_size(a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"a and b must hold the same number of operators, got {a.shape[0]} "
            f"and {b.shape[0]}"
        )
    return {key: _numpy(v) for key, v in _procrustes(a, b, config).items()}


def procrustes_vf_grid_2x2(a_2x2, b_2x2, n_grid: int = 100_000) -> dict[str, float]:
    """Slow reference for :func:`procrustes_vf` on 2 x 2 operators: a grid over
    the rotation angle of both components of O(2), angular by arccos."""
    a = np.asarray(a_2x2, dtype=np.float64)
    b = np.asarray(b_2x2, dtype=np.float64)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    theta = np.linspace(0.0, 2 * np.pi, n_grid, endpoint=False)
    cos, sin = np.cos(theta), np.sin(theta)
    rotations = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    candidates = np.concatenate([rotations, rotations @ np.diag([1.0, -1.0])])
    moved = candidates @ b @ candidates.transpose(0, 2, 1)
    cosine = np.einsum("ij,gij->g", a, moved)
    best = cosine.argmax()  # max cosine = min distance for unit operators
    return dict(
        euclidean=float(np.linalg.norm(a - moved[best])),
        angular=float(np.arccos(np.clip(cosine[best], -1.0, 1.0))),
    )


# ---------------------------------------------------------------------------
# Ensembles


def _pairwise(ops_kxrxr: torch.Tensor, config: DSAConfig):
    """All k(k-1)/2 pairs in one batch: (distances [k, k], loss [k, k])."""
    n_nets = ops_kxrxr.shape[0]
    i, j = torch.triu_indices(n_nets, n_nets, 1, device=ops_kxrxr.device)
    result = _procrustes(ops_kxrxr[i], ops_kxrxr[j], config)
    out = []
    for values in (result[config.score], result["loss"]):
        full = torch.zeros(n_nets, n_nets, dtype=values.dtype, device=values.device)
        full[i, j] = values
        full[j, i] = values
        out.append(_numpy(full))
    return tuple(out)


def dsa_pairwise(
    ops_kxrxr, config: DSAConfig, *, dtype=torch.float64, device="cpu"
) -> np.ndarray:
    """DSA between all operator pairs, 0 means identical: ``[k, k]`` in
    ``config.score``, symmetric with a zero diagonal."""
    ops = _check_ops(ops_kxrxr, "ops", dtype, device)
    return _pairwise(ops, config)[0]


def dsa_cross(
    ops_axrxr, ops_bxrxr, config: DSAConfig, *, dtype=torch.float64, device="cpu"
) -> np.ndarray:
    """DSA between every operator of one set and every one of another, 0 means
    identical: ``[a, b]`` in ``config.score``."""
    a = _check_ops(ops_axrxr, "ops_a", dtype, device)
    b = _check_ops(ops_bxrxr, "ops_b", dtype, device)
    _check_same_size(a, b)
    n_a, n_b = a.shape[0], b.shape[0]
    left = a.repeat_interleave(n_b, 0)  # pair (i, j) sits at i * n_b + j
    right = b.repeat(n_a, 1, 1)
    return _numpy(_procrustes(left, right, config)[config.score].reshape(n_a, n_b))


def dsa(
    states_kxbxtxn, config: DSAConfig, *, dtype=torch.float64, device="cpu"
) -> DSAResult:
    """DSA across an ensemble, 0 means identical dynamics: fits one operator
    per network on ``[k, b, t, n]`` states and compares all pairs."""
    axes = "net, batch, time, units"
    states = _as_tensor(states_kxbxtxn, "states", axes, dtype, device)
    ops, residual = _fit_operators(
        states, config.n_delays, config.delay_interval, config.rank, 3
    )
    distances, loss = _pairwise(ops, config)
    return DSAResult(
        distances=distances,
        operators=_numpy(ops),
        fit_residual=_numpy(residual),
        fit_loss=loss,
        config=config,
    )


def same_network_null(
    states_a_kxbxtxn,
    states_b_kxbxtxn,
    config: DSAConfig,
    *,
    dtype=torch.float64,
    device="cpu",
) -> np.ndarray:
    """DSA between two trajectory samples of each network, 0 means identical:
    ``[k]`` in ``config.score``. Sample ``b`` of network i must come from the
    same network as sample ``a`` of network i, on other input trials."""
    axes = "net, batch, time, units"
    first = _as_tensor(states_a_kxbxtxn, "states_a", axes, dtype, device)
    second = _as_tensor(states_b_kxbxtxn, "states_b", axes, dtype, device)
    if first.shape[0] != second.shape[0]:
        raise ValueError(
            "states_a and states_b must hold the same networks, got "
            f"{first.shape[0]} and {second.shape[0]} networks"
        )
    fit = (config.n_delays, config.delay_interval, config.rank, 3)
    ops_a = _fit_operators(first, *fit)[0]
    ops_b = _fit_operators(second, *fit)[0]
    return _numpy(_procrustes(ops_a, ops_b, config)[config.score])


def classical_mds(distances_kxk, n_components: int = 2) -> np.ndarray:
    """Torgerson (classical) MDS embedding ``[k, n_components]`` of a distance
    matrix; each axis is signed so its largest-magnitude entry is positive."""
    if isinstance(distances_kxk, torch.Tensor):
        distances_kxk = distances_kxk.detach().cpu().numpy()
    dist = np.array(distances_kxk, dtype=np.float64)  # a copy
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"distances must be square [k, k], got {dist.shape}")
    if not np.isfinite(dist).all():
        raise ValueError("distances contain NaN or inf")
    if not np.allclose(dist, dist.T, atol=1e-8):
        raise ValueError("distances must be symmetric")
    _check_int("classical_mds", "n_components", n_components)
    check_range("classical_mds", "n_components", n_components, 1, len(dist))
    centre = np.eye(len(dist)) - 1.0 / len(dist)
    gram = -0.5 * centre @ np.square(dist) @ centre
    eigvals, eigvecs = np.linalg.eigh(gram)  # ascending
    order = np.argsort(eigvals)[::-1][:n_components]
    coords = eigvecs[:, order] * np.sqrt(np.clip(eigvals[order], 0.0, None))
    lead = coords[np.abs(coords).argmax(0), np.arange(n_components)]
    return coords * np.where(lead < 0, -1.0, 1.0)

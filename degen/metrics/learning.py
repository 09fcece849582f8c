"""Feature-learning diagnostics: how far training moved weights and kernel.

Both compare each network's parameters at the start and at the end of
training and know nothing of training itself. Parameters come as stored: a
dict of stacked tensors with a leading network axis,
``{"w_h": [k, n, n], "w_x": [k, n, in], "b": [k, n], "w_o": [k, out, n],
"c": [k, out]}``.

The empirical neural tangent kernel (NTK) of network k on a probe batch is
``K = J J^T``, where row ``j`` of ``J`` is the gradient of the ``j``-th output
entry (over batch, time and output channel) with respect to all of the
network's parameters. It is built by one backward pass per output entry, so
keep the probe small (batch * time * out of a few hundred).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import numpy as np
import torch

from degen.model import PARAM_NAMES, Ensemble, ModelConfig

# forward(params, inputs [batch, time, in]) -> outputs [net, batch, time, out]
Forward = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def weight_change(initial_kx, final_kx) -> np.ndarray:
    """Distance, 0 means unchanged: ``||W_T - W_0||_F`` of each network, ``[net]``.

    ``initial_kx`` and ``final_kx`` hold one weight of every network at the
    start and at the end of training, e.g. ``w_h`` as ``[net, n, n]``; every
    axis after the first is summed over.
    """
    initial = np.asarray(initial_kx, dtype=np.float64)
    final = np.asarray(final_kx, dtype=np.float64)
    if initial.shape != final.shape or initial.ndim < 2:
        raise ValueError(
            f"initial weights have shape {initial.shape} and final {final.shape}; "
            "expected equal shapes [net, ...] with at least two axes"
        )
    return np.linalg.norm((final - initial).reshape(len(final), -1), axis=1)


def standard_forward(params: dict[str, torch.Tensor], inputs_bxtxi: torch.Tensor):
    """The standard-parameterization ensemble (:class:`degen.model.Ensemble`)
    run with ``params``: outputs ``[net, batch, time, out]``."""
    missing = sorted(set(PARAM_NAMES) - set(params))
    if missing:
        raise ValueError(
            f"params lack {missing}; the standard model needs {list(PARAM_NAMES)} "
            "(pass forward= for another parameterization)"
        )
    k, n_outputs, n = params["w_o"].shape
    model = Ensemble(
        ModelConfig(n_hidden=n),
        params["w_x"].shape[-1],
        n_outputs,
        seeds=list(range(k)),
        dtype=params["w_h"].dtype,
    )
    return model(inputs_bxtxi, params)[0]


def _n_networks(params: Mapping, name: str) -> int:
    """The common size of every parameter's leading (network) axis."""
    sizes = {key: (np.shape(v)[0] if np.ndim(v) else None) for key, v in params.items()}
    if not sizes or len(set(sizes.values())) != 1 or None in sizes.values():
        raise ValueError(
            f"{name} leading (network) axis sizes are {sizes}; every parameter "
            "needs the same number of networks first"
        )
    return next(iter(sizes.values()))


def _leaves(params: Mapping) -> dict[str, torch.Tensor]:
    """Float64 copies that record gradients; the caller's tensors stay as they are."""
    return {
        key: torch.as_tensor(value)
        .detach()
        .to("cpu", torch.float64)
        .clone()
        .requires_grad_(True)
        for key, value in params.items()
    }


def empirical_ntk(
    params: Mapping, inputs_bxtxi, forward: Forward | None = None
) -> torch.Tensor:
    """Kernel, one per network: the empirical NTK ``J J^T`` on the probe
    inputs, ``[net, m, m]`` with ``m = batch * time * out`` (float64, CPU).

    ``forward(params, inputs)`` must return ``[net, batch, time, out]``; by
    default it is :func:`standard_forward`. Networks must not share
    parameters: one backward pass of an output entry summed over networks
    then gives every network's own gradient row at once.
    """
    forward = standard_forward if forward is None else forward
    k = _n_networks(params, "params")
    leaves = _leaves(params)
    inputs = torch.as_tensor(inputs_bxtxi).detach().to("cpu", torch.float64)
    if inputs.dim() != 3:
        raise ValueError(
            f"inputs have shape {tuple(inputs.shape)}; expected [batch, time, in]"
        )
    outputs = forward(leaves, inputs)
    if outputs.dim() != 4 or outputs.shape[0] != k:
        raise ValueError(
            f"forward returned shape {tuple(outputs.shape)}; expected "
            f"[{k}, batch, time, out]"
        )
    outputs_kxm = outputs.reshape(k, -1)
    names = list(leaves)
    rows = []
    for j in range(outputs_kxm.shape[1]):
        grads = torch.autograd.grad(
            outputs_kxm[:, j].sum(),
            [leaves[name] for name in names],
            retain_graph=True,
            allow_unused=True,
        )
        flat = [
            torch.zeros(k, leaves[name][0].numel(), dtype=torch.float64)
            if g is None
            else g.reshape(k, -1)
            for name, g in zip(names, grads, strict=True)
        ]
        rows.append(torch.cat(flat, dim=1))
    jac_kxmxp = torch.stack(rows, dim=1)
    return jac_kxmxp @ jac_kxmxp.transpose(1, 2)


def ntk_alignment(
    params_initial: Mapping,
    params_final: Mapping,
    inputs_bxtxi,
    forward: Forward | None = None,
    chunk: int = 8,
) -> np.ndarray:
    """Similarity, 1 means the kernel kept its shape: the alignment
    ``Tr(K_T K_0) / (||K_T||_F ||K_0||_F)`` of each network's empirical NTK at
    the end (``K_T``) and at the start (``K_0``) of training, ``[net]``.

    Lower means more feature learning. NTKs are positive semi-definite, so
    values lie in [0, 1]; scaling a kernel leaves its alignment unchanged. A
    network whose kernel is zero gets NaN, with a warning. ``chunk`` networks
    are done at a time: their Jacobians take ``chunk * m * n_params * 8``
    bytes.
    """
    if set(params_initial) != set(params_final):
        raise ValueError(
            f"initial params have keys {sorted(params_initial)} and final "
            f"{sorted(params_final)}; expected the same"
        )
    for key in params_initial:
        a, b = np.shape(params_initial[key]), np.shape(params_final[key])
        if a != b:
            raise ValueError(
                f"params[{key!r}] has shape {a} at the start, {b} at the end"
            )
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk = {chunk!r}; it must be an integer >= 1")
    k = _n_networks(params_initial, "params_initial")
    inner, norms = [], []
    for start in range(0, k, chunk):
        part = slice(start, start + chunk)
        k_0 = empirical_ntk(
            {key: v[part] for key, v in params_initial.items()}, inputs_bxtxi, forward
        )
        k_t = empirical_ntk(
            {key: v[part] for key, v in params_final.items()}, inputs_bxtxi, forward
        )
        # Tr(K_T K_0) = sum of the entrywise product, the kernels being symmetric.
        inner.append((k_t * k_0).sum(dim=(1, 2)))
        norms.append(k_t.norm(dim=(1, 2)) * k_0.norm(dim=(1, 2)))
    inner, norms = torch.cat(inner), torch.cat(norms)
    zero = norms == 0
    if zero.any():
        warnings.warn(
            f"networks {zero.nonzero().flatten().tolist()} have a zero NTK on "
            "this probe; their alignment is undefined (NaN)",
            stacklevel=2,
        )
    return torch.where(zero, torch.nan, inner / norms.clamp_min(1e-300)).numpy()

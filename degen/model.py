"""An ensemble of K independent RNNs stored as stacked tensors.

Standard parameterization (PAPER.md): ``h_t = tanh(W_h h_{t-1} + W_x x_t + b)``,
``y_t = W_o h_t + c``, h_0 = 0, every weight drawn from U(-1/sqrt(n), 1/sqrt(n)).
Network k draws its initial weights from its own seed, so an ensemble of K
holds the same networks as K ensembles of one.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from degen.config import ConfigError, check_choice, check_range

log = logging.getLogger(__name__)

PARAM_NAMES = ("w_h", "w_x", "b", "w_o", "c")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of every network in an ensemble."""

    n_hidden: int = 128
    parameterization: str = "standard"

    def __post_init__(self):
        check_range("ModelConfig", "n_hidden", self.n_hidden, 1, 100_000)
        check_choice(
            "ModelConfig", "parameterization", self.parameterization, ("standard",)
        )


def derive_seeds(seed: int) -> tuple[int, int]:
    """Two independent 63-bit seeds (weights, data) from one network seed."""
    init_seed, data_seed = np.random.SeedSequence(seed).generate_state(2, np.uint64)
    return int(init_seed >> np.uint64(1)), int(data_seed >> np.uint64(1))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when present, else CPU; an unavailable CUDA request
    falls back to CPU with a warning saying so."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(
            f"device {device!r} requested but CUDA is not available; using the CPU "
            "(pass --device cpu to silence this)",
            stacklevel=2,
        )
        return torch.device("cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"device = {device!r}; valid: 'auto', 'cpu', 'cuda[:i]'")
    return torch.device(device)


def recurrence_reference(drive_kxbxtxn: torch.Tensor, w_h: torch.Tensor):
    """``h_t = tanh(drive_t + W_h h_{t-1})`` from h_0 = 0, step by step under
    autograd: the slow, obvious version :class:`Recurrence` is tested against."""
    k, n_batch, n_steps, n = drive_kxbxtxn.shape
    h_kxbxn = drive_kxbxtxn.new_zeros(k, n_batch, n)
    states = []
    for t in range(n_steps):
        h_kxbxn = torch.tanh(
            drive_kxbxtxn[:, :, t] + torch.bmm(h_kxbxn, w_h.transpose(1, 2))
        )
        states.append(h_kxbxn)
    return torch.stack(states, dim=2)


class Recurrence(torch.autograd.Function):
    """The tanh recurrence with a hand-written backward pass through time.

    Autograd would record a bmm, an add and a tanh per step and replay them
    one by one; here the backward loop does one bmm per step and the weight
    gradient is a single batched matmul over all steps afterwards.
    """

    @staticmethod
    def forward(ctx, drive_kxbxtxn, w_h):
        k, n_batch, n_steps, n = drive_kxbxtxn.shape
        hidden_kxtxbxn = drive_kxbxtxn.new_empty(k, n_steps, n_batch, n)
        w_h_t = w_h.transpose(1, 2)
        h_kxbxn = drive_kxbxtxn.new_zeros(k, n_batch, n)
        for t in range(n_steps):
            pre = torch.baddbmm(drive_kxbxtxn[:, :, t], h_kxbxn, w_h_t)
            h_kxbxn = torch.tanh(pre, out=hidden_kxtxbxn[:, t])
        ctx.save_for_backward(hidden_kxtxbxn, w_h)
        return hidden_kxtxbxn.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad_kxbxtxn):
        hidden_kxtxbxn, w_h = ctx.saved_tensors
        k, n_steps, n_batch, n = hidden_kxtxbxn.shape
        grad_kxtxbxn = grad_kxbxtxn.transpose(1, 2)
        # dpre_t = (dL/dh_t + dpre_{t+1} W_h) * (1 - h_t^2)
        dpre_kxtxbxn = torch.empty_like(hidden_kxtxbxn)
        carry = hidden_kxtxbxn.new_zeros(k, n_batch, n)
        for t in range(n_steps - 1, -1, -1):
            h_t = hidden_kxtxbxn[:, t]
            d = (grad_kxtxbxn[:, t] + carry) * (1 - h_t * h_t)
            dpre_kxtxbxn[:, t] = d
            carry = torch.bmm(d, w_h)
        # dW_h = sum_t dpre_t^T h_{t-1}, with h_{-1} = 0.
        prev = torch.cat(
            [hidden_kxtxbxn.new_zeros(k, 1, n_batch, n), hidden_kxtxbxn[:, :-1]], 1
        )
        grad_w_h = torch.bmm(
            dpre_kxtxbxn.reshape(k, -1, n).transpose(1, 2), prev.reshape(k, -1, n)
        )
        return dpre_kxtxbxn.transpose(1, 2), grad_w_h


class Ensemble(nn.Module):
    """K independent RNNs; parameters have a leading network axis."""

    def __init__(
        self,
        config: ModelConfig,
        n_inputs: int,
        n_outputs: int,
        seeds: list[int] | tuple[int, ...],
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if len(seeds) == 0:
            raise ConfigError("seeds is empty; an ensemble needs at least one seed")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(
                f"seeds = {list(seeds)} repeats a seed; give distinct ones"
            )
        self.config = config
        self.seeds = tuple(int(s) for s in seeds)
        self.n_inputs, self.n_outputs = n_inputs, n_outputs
        n = config.n_hidden
        shapes = {
            "w_h": (n, n),
            "w_x": (n, n_inputs),
            "b": (n,),
            "w_o": (n_outputs, n),
            "c": (n_outputs,),
        }
        bound = 1.0 / np.sqrt(n)
        stacked = {name: [] for name in PARAM_NAMES}
        for seed in self.seeds:
            gen = torch.Generator().manual_seed(derive_seeds(seed)[0])
            for name in PARAM_NAMES:  # fixed draw order: same seed, same network
                u = torch.rand(shapes[name], generator=gen, dtype=torch.float64)
                stacked[name].append((2 * u - 1) * bound)
        for name in PARAM_NAMES:
            value = torch.stack(stacked[name]).to(dtype)
            self.register_parameter(name, nn.Parameter(value))

    @property
    def n_networks(self) -> int:
        return len(self.seeds)

    def weights(self, index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The parameters, optionally of a subset of networks (differentiable)."""
        params = {name: getattr(self, name) for name in PARAM_NAMES}
        if index is None:
            return params
        return {name: p.index_select(0, index) for name, p in params.items()}

    def forward(
        self, inputs: torch.Tensor, params: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run networks on ``inputs``.

        inputs: ``[net, batch, time, in]`` (one stream per network) or
        ``[batch, time, in]`` (the same trials for every network).
        params: the parameters to run, e.g. ``self.weights(index)`` for a subset
        of networks (all networks by default).
        Returns outputs ``[net, batch, time, out]`` and hidden states
        ``[net, batch, time, n]``.
        """
        p = self.weights() if params is None else params
        k = p["w_h"].shape[0]
        if inputs.dim() == 3:
            inputs = inputs.unsqueeze(0).expand(k, *inputs.shape)
        if (
            inputs.dim() != 4
            or inputs.shape[0] != k
            or inputs.shape[-1] != self.n_inputs
        ):
            raise ValueError(
                f"inputs have shape {tuple(inputs.shape)}; expected "
                f"[{k}, batch, time, {self.n_inputs}] or [batch, time, {self.n_inputs}]"
            )
        inputs = inputs.to(p["w_h"].dtype)
        # Input drive for every step at once: [net, batch, time, n].
        drive_kxbxtxn = torch.einsum("kbti,kni->kbtn", inputs, p["w_x"])
        drive_kxbxtxn = drive_kxbxtxn + p["b"][:, None, None, :]
        hidden_kxbxtxn = Recurrence.apply(drive_kxbxtxn, p["w_h"])
        outputs = torch.einsum("kbtn,kon->kbto", hidden_kxbxtxn, p["w_o"])
        outputs = outputs + p["c"][:, None, None, :]
        return outputs, hidden_kxbxtxn

    @torch.no_grad()
    def run(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward without gradients; CPU tensors out."""
        device = self.w_h.device
        outputs, hidden = self(inputs.to(device))
        return outputs.cpu(), hidden.cpu()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Detached CPU copies of the parameters, for the store."""
        return {
            name: getattr(self, name).detach().cpu().clone() for name in PARAM_NAMES
        }

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name in PARAM_NAMES:
                getattr(self, name).copy_(tensors[name])

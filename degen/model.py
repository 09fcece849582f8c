"""An ensemble of K independent RNNs stored as stacked tensors.

Standard parameterization (PAPER.md): ``h_t = tanh(W_h h_{t-1} + W_x x_t + b)``,
``y_t = W_o h_t + c``, h_0 = 0, every weight drawn from U(-1/sqrt(n), 1/sqrt(n)).

Mean-field (muP) parameterization (PAPER.md), with N = n units:
``h_t = h_{t-1} + tau * (-h_{t-1} + W_h tanh(h_{t-1}) / N + W_x x_t)``, h_0 = 0,
``y_t = W_o tanh(h_t) / (gamma * N)``; ``W_h`` entries are drawn from
Normal(0, N) so that ``W_h / N`` has entry variance 1/N, ``W_x`` and ``W_o``
entries from Normal(0, 1). The equation has no biases: ``b`` and ``c`` stay
zero and are not trained. Adam's learning rate is multiplied by gamma
(:attr:`ModelConfig.lr_scale`). The hidden states it reports are the rates
``tanh(h_t)``, the vector the readout reads, as in the standard model.

Network k draws its initial weights from its own seed, so an ensemble of K
holds the same networks as K ensembles of one.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from degen.config import ConfigError, check_choice, check_range

log = logging.getLogger(__name__)

PARAM_NAMES = ("w_h", "w_x", "b", "w_o", "c")
PARAMETERIZATIONS = ("standard", "mup")
MUP_TRAINED = ("w_h", "w_x", "w_o")  # the muP equation has no biases

_PAGE = mmap.PAGESIZE
_MADV_HUGEPAGE = 14  # <linux/mman.h>
_MADVISE = ctypes.CDLL(None).madvise if sys.platform == "linux" else None


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of every network in an ensemble.

    gamma and tau belong to the muP parameterization: gamma > 0 sets how far
    hidden features move (larger = richer feature learning), tau in (0, 1] is
    the update's step size. The standard parameterization has neither and
    refuses values other than the defaults.
    """

    n_hidden: int = 128
    parameterization: str = "standard"
    gamma: float = 1.0
    tau: float = 0.1

    def __post_init__(self):
        owner = "ModelConfig"
        check_range(owner, "n_hidden", self.n_hidden, 1, 100_000)
        check_choice(
            owner, "parameterization", self.parameterization, PARAMETERIZATIONS
        )
        for name in ("gamma", "tau"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{owner}.{name} = {value!r}; it must be a number")
            # 2 and 2.0 are one config: store the float so they share a key.
            object.__setattr__(self, name, float(value))
        check_range(owner, "gamma", self.gamma, 0.0, low_open=True)
        check_range(owner, "tau", self.tau, 0.0, 1.0, low_open=True)
        if self.parameterization == "standard":
            for name, default in (("gamma", 1.0), ("tau", 0.1)):
                if getattr(self, name) != default:
                    raise ConfigError(
                        f"{owner}.{name} = {getattr(self, name)!r} has no effect "
                        f"with parameterization 'standard'; set parameterization "
                        f"to 'mup' or leave {name} at {default}"
                    )

    @property
    def lr_scale(self) -> float:
        """Factor on the base learning rate: gamma under muP (``eta = gamma *
        eta_0``), 1 under the standard parameterization."""
        return self.gamma if self.parameterization == "mup" else 1.0

    @property
    def trained_names(self) -> tuple[str, ...]:
        """The parameters training updates; the others keep their initial value."""
        return MUP_TRAINED if self.parameterization == "mup" else PARAM_NAMES


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


def recurrence_reference(
    drive_kxbxtxn: torch.Tensor, w_h: torch.Tensor, leak: float = 0.0
):
    """``h_t = leak * h_{t-1} + drive_t + W_h tanh(h_{t-1})`` from h_0 = 0,
    returning the rates ``tanh(h_t)``, step by step under autograd: the slow,
    obvious version :class:`Recurrence` is tested against. With ``leak = 0``
    the rates follow ``r_t = tanh(drive_t + W_h r_{t-1})``."""
    k, n_batch, n_steps, n = drive_kxbxtxn.shape
    h_kxbxn = drive_kxbxtxn.new_zeros(k, n_batch, n)
    r_kxbxn = drive_kxbxtxn.new_zeros(k, n_batch, n)
    states = []
    for t in range(n_steps):
        h_kxbxn = (
            leak * h_kxbxn
            + drive_kxbxtxn[:, :, t]
            + torch.bmm(r_kxbxn, w_h.transpose(1, 2))
        )
        r_kxbxn = torch.tanh(h_kxbxn)
        states.append(r_kxbxn)
    return torch.stack(states, dim=2)


def _empty_huge(*shape, like: torch.Tensor) -> torch.Tensor:
    """``like.new_empty(shape)``, backed by transparent huge pages where the
    kernel offers them (Linux, CPU, at least 4 MB). The recurrence writes
    its two full-length buffers (tens of MB) one step at a time into fresh
    memory, and with 4 kB pages the page faults cost as much as the
    elementwise work; with 2 MB pages there are 512 times fewer."""
    out = like.new_empty(shape)
    nbytes = out.numel() * out.element_size()
    if _MADVISE is not None and out.device.type == "cpu" and nbytes >= 1 << 22:
        # madvise only advises: a refusal (an old kernel, THP off) leaves
        # ordinary pages, so its return code is not checked.
        start = out.data_ptr() & ~(_PAGE - 1)
        _MADVISE(
            ctypes.c_void_p(start),
            ctypes.c_size_t(out.data_ptr() + nbytes - start),
            _MADV_HUGEPAGE,
        )
    return out


def _tanh(x: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """``tanh(x)`` into ``out`` as ``2 sigmoid(2x) - 1``, leaving ``x`` as it
    is: on the CPU, torch's float32 tanh takes 2 to 3 times as long as this
    (the recurrence's largest cost after the matmul). The two agree to
    2e-7 in float32 and to rounding in float64."""
    torch.sigmoid(torch.mul(x, 2.0, out=scratch), out=out)
    return out.mul_(2.0).sub_(1.0)


class Recurrence(torch.autograd.Function):
    """The tanh recurrence with a hand-written backward pass through time.

    ``apply(drive, w_h, leak)`` computes what :func:`recurrence_reference`
    does: pre-activations ``h_t = leak * h_{t-1} + drive_t + W_h r_{t-1}``,
    rates ``r_t = tanh(h_t)`` returned ``[net, batch, time, n]``. ``leak`` is
    a number, 0 for the standard model, ``1 - tau`` for muP.

    Autograd would record a bmm, an add and a tanh per step and replay them
    one by one; here the backward loop does one bmm per step and the weight
    gradient is a single batched matmul over all steps afterwards.
    """

    @staticmethod
    def forward(ctx, drive_kxbxtxn, w_h, leak=0.0):
        k, n_batch, n_steps, n = drive_kxbxtxn.shape
        hidden_kxtxbxn = _empty_huge(k, n_steps, n_batch, n, like=drive_kxbxtxn)
        w_h_t = w_h.transpose(1, 2)
        h_kxbxn = drive_kxbxtxn.new_zeros(k, n_batch, n)  # the rates r_{t-1}
        # The leak acts on the pre-activations, which only muP needs to keep.
        pre_prev = drive_kxbxtxn.new_zeros(k, n_batch, n) if leak else None
        scratch = drive_kxbxtxn.new_empty(k, n_batch, n)
        for t in range(n_steps):
            pre = torch.baddbmm(drive_kxbxtxn[:, :, t], h_kxbxn, w_h_t)
            if leak:
                pre_prev = pre.add_(pre_prev, alpha=leak)
            h_kxbxn = _tanh(pre, hidden_kxtxbxn[:, t], scratch)
        ctx.save_for_backward(hidden_kxtxbxn, w_h)
        ctx.leak = leak
        return hidden_kxtxbxn.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad_kxbxtxn):
        hidden_kxtxbxn, w_h = ctx.saved_tensors
        leak = ctx.leak
        k, n_steps, n_batch, n = hidden_kxtxbxn.shape
        grad_kxtxbxn = grad_kxbxtxn.transpose(1, 2)
        # dpre_t = (dL/dr_t + dpre_{t+1} W_h) * (1 - r_t^2) + leak * dpre_{t+1}
        dpre_kxtxbxn = _empty_huge(k, n_steps, n_batch, n, like=hidden_kxtxbxn)
        carry = hidden_kxtxbxn.new_zeros(k, n_batch, n)
        scratch = hidden_kxtxbxn.new_empty(k, n_batch, n)
        for t in range(n_steps - 1, -1, -1):
            h_t, d = hidden_kxtxbxn[:, t], dpre_kxtxbxn[:, t]
            # d = g - g h^2 with g = dL/dr_t + carry, written in place.
            torch.add(grad_kxtxbxn[:, t], carry, out=d)
            d.addcmul_(torch.mul(d, h_t, out=scratch), h_t, value=-1.0)
            if leak and t < n_steps - 1:
                d.add_(dpre_kxtxbxn[:, t + 1], alpha=leak)
            carry = torch.bmm(d, w_h)
        # dW_h = sum_t dpre_t^T r_{t-1}, with r_{-1} = 0: step 0 adds nothing,
        # and dropping it keeps both operands views (no copy).
        grad_w_h = torch.bmm(
            dpre_kxtxbxn[:, 1:].reshape(k, -1, n).transpose(1, 2),
            hidden_kxtxbxn[:, :-1].reshape(k, -1, n),
        )
        return dpre_kxtxbxn.transpose(1, 2), grad_w_h, None


def _linear(x_kxbxtxi, w_kxoxi, bias_kxo=None):
    """``x W^T (+ bias)`` per network as one batched matmul: ``[k, b, t, o]``.

    ``x`` may be a step-major view (the recurrence returns its states as a
    transpose of ``[k, t, b, n]``); the trial and step axes are merged in
    whichever order is contiguous, so no copy is made, and the result has the
    same layout.
    """
    k, n_batch, n_steps, _ = x_kxbxtxi.shape
    w_t = w_kxoxi.transpose(1, 2)
    step_major = x_kxbxtxi.transpose(1, 2)
    if not x_kxbxtxi.is_contiguous() and step_major.is_contiguous():
        flat, shape = step_major.reshape(k, n_steps * n_batch, -1), (n_steps, n_batch)
    else:
        flat, shape = x_kxbxtxi.reshape(k, n_batch * n_steps, -1), (n_batch, n_steps)
    if bias_kxo is None:
        out = torch.bmm(flat, w_t)
    else:
        out = torch.baddbmm(bias_kxo[:, None, :], flat, w_t)
    out = out.view(k, *shape, -1)
    return out if shape == (n_batch, n_steps) else out.transpose(1, 2)


def _draw_standard(name: str, shape, n: int, gen: torch.Generator):
    """U(-1/sqrt(n), 1/sqrt(n)) for every parameter (float64)."""
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    return (2 * u - 1) / np.sqrt(n)


def _draw_mup(name: str, shape, n: int, gen: torch.Generator):
    """W_h ~ Normal(0, n) entrywise (so W_h / n has variance 1/n), W_x and W_o
    ~ Normal(0, 1), the biases zero (float64)."""
    if name in ("b", "c"):
        return torch.zeros(shape, dtype=torch.float64)
    z = torch.randn(shape, generator=gen, dtype=torch.float64)
    return z * np.sqrt(n) if name == "w_h" else z


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
        stacked = {name: [] for name in PARAM_NAMES}
        for seed in self.seeds:
            gen = torch.Generator().manual_seed(derive_seeds(seed)[0])
            draw = _draw_mup if config.parameterization == "mup" else _draw_standard
            for name in PARAM_NAMES:  # fixed draw order: same seed, same network
                stacked[name].append(draw(name, shapes[name], n, gen))
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
        # Step-major memory ([net, time, batch, in] viewed as [net, batch,
        # time, in]; a small copy, inputs are few): the drive, hidden states
        # and outputs then come out step-major too, so each step's slice is
        # contiguous and the gradients flow back without copying.
        inputs = inputs.to(p["w_h"].dtype).transpose(1, 2).contiguous().transpose(1, 2)
        # Input drive for every step at once, one batched matmul (with the
        # bias) over all trials and steps: [net, batch, time, n].
        if self.config.parameterization == "mup":
            drive_kxbxtxn = _linear(inputs, p["w_x"])
            return self._forward_mup(drive_kxbxtxn, p)
        drive_kxbxtxn = _linear(inputs, p["w_x"], p["b"])
        hidden_kxbxtxn = Recurrence.apply(drive_kxbxtxn, p["w_h"])
        outputs = _linear(hidden_kxbxtxn, p["w_o"], p["c"])
        return outputs, hidden_kxbxtxn

    def _forward_mup(self, drive_kxbxtxn, p):
        """``h_t = (1 - tau) h_{t-1} + tau W_h tanh(h_{t-1}) / N + tau W_x x_t``,
        ``y_t = W_o tanh(h_t) / (gamma N)``; returns outputs and rates."""
        n, tau = self.config.n_hidden, self.config.tau
        rates_kxbxtxn = Recurrence.apply(
            tau * drive_kxbxtxn, p["w_h"] * (tau / n), 1.0 - tau
        )
        outputs = _linear(rates_kxbxtxn, p["w_o"])
        return outputs / (self.config.gamma * n), rates_kxbxtxn

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

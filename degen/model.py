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

from degen.config import ConfigError, check_choice, check_range, check_types

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
        check_types(self)
        owner = "ModelConfig"
        check_range(owner, "n_hidden", self.n_hidden, 1, 100_000)
        check_choice(
            owner, "parameterization", self.parameterization, PARAMETERIZATIONS
        )
        # 2 and 2.0 are one config: store the float so they share a key.
        for name in ("gamma", "tau"):
            object.__setattr__(self, name, float(getattr(self, name)))
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


def network_reference(x_kxbxtxi, w_h, w_x, b, w_o, c, leak: float = 0.0):
    """``h_t = leak * h_{t-1} + W_h tanh(h_{t-1}) + W_x x_t + b`` from h_{-1}
    = 0, ``y_t = W_o tanh(h_t) + c``, step by step under autograd: the slow,
    obvious version :class:`RecurrentNetwork` is tested against. Returns the
    outputs and the rates ``tanh(h_t)``, ``[net, batch, time, .]``."""
    k, n_batch, n_steps, _ = x_kxbxtxi.shape
    n = w_h.shape[1]
    h_kxbxn = x_kxbxtxi.new_zeros(k, n_batch, n)
    r_kxbxn = x_kxbxtxi.new_zeros(k, n_batch, n)
    rates = []
    for t in range(n_steps):
        drive_kxbxn = torch.einsum("kbi,kni->kbn", x_kxbxtxi[:, :, t], w_x)
        h_kxbxn = (
            leak * h_kxbxn
            + torch.einsum("kbm,knm->kbn", r_kxbxn, w_h)
            + drive_kxbxn
            + b[:, None, :]
        )
        r_kxbxn = torch.tanh(h_kxbxn)
        rates.append(r_kxbxn)
    rates_kxbxtxn = torch.stack(rates, dim=2)
    outputs = torch.einsum("kbtn,kon->kbto", rates_kxbxtxn, w_o) + c[:, None, None]
    return outputs, rates_kxbxtxn


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


class Workspace:
    """Full-length buffers that :class:`RecurrentNetwork` reuses from one run
    to the next, for a loop such as training that runs many times and keeps
    nothing a run returned once the next one starts.

    Fresh buffers of tens of MB cost a page fault per page on first touch,
    about as much as the elementwise work of the whole run; reused ones cost
    nothing. The rates a run returns are a view of its buffer, so the next
    run with the same workspace overwrites them: without a workspace (the
    default) every run gets buffers of its own.
    """

    def __init__(self):
        self._flat: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised ``shape`` buffer, grown when a run needs more."""
        size = int(np.prod(shape))
        flat = self._flat.get(name)
        if (
            flat is None
            or flat.numel() < size
            or flat.dtype != like.dtype
            or flat.device != like.device
        ):
            flat = self._flat[name] = _empty_huge(size, like=like)
        return flat[:size].view(shape)


def _buffer(workspace, name, shape, like):
    if workspace is None:
        return _empty_huge(*shape, like=like)
    return workspace.get(name, shape, like)


def _tanh(x: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """``tanh(x)`` into ``out`` as ``2 sigmoid(2x) - 1``, leaving ``x`` as it
    is: on the CPU, torch's float32 tanh takes 2 to 3 times as long as this
    (the recurrence's largest cost after the matmul). The two agree to
    2e-7 in float32 and to rounding in float64."""
    torch.sigmoid(torch.mul(x, 2.0, out=scratch), out=out)
    return out.mul_(2.0).sub_(1.0)


class RecurrentNetwork(torch.autograd.Function):
    """Every network's whole run, input drive, tanh recurrence and readout,
    with a hand-written backward pass through time.

    ``apply(x, w_h, w_x, b, w_o, c, leak, workspace)`` takes step-major
    inputs ``x`` ``[net, time, batch, in]`` and returns step-major outputs
    ``[net, time, batch, out]`` and rates ``[net, time, batch, n]``:

        h_t = leak * h_{t-1} + W_h r_{t-1} + W_x x_t + b,   r_t = tanh(h_t),
        y_t = W_o r_t + c,

    from h_{-1} = r_{-1} = 0. ``leak`` is a number, 0 for the standard model
    and ``1 - tau`` for muP (which passes its scaled weights). ``workspace``
    (a :class:`Workspace`, or None) holds the buffers to reuse.

    The readout and input have only a few channels, and a matmul with a
    dimension of 3 runs far below the machine's speed, so neither gets one of
    its own. Step t's row ``z_t = [r_{t-1}, x_t, 1]`` is stored whole, and one
    matmul with ``[W_h, W_x, b]`` gives the pre-activation. Backward stores
    ``e_t = [dL/dh_t, dL/dy_{t-1}]``: one matmul of ``e_{t+1}`` with ``[W_h;
    W_o]`` carries the gradient a step back, readout included, and a single
    batched matmul ``sum_t e_t^T z_t`` over all steps gives the gradients of
    all five parameters at once.
    """

    @staticmethod
    def forward(ctx, x_kxtxbxi, w_h, w_x, b, w_o, c, leak=0.0, workspace=None):
        ctx.set_materialize_grads(False)  # rates are mostly not differentiated
        k, n_steps, n_batch, n_in = x_kxtxbxi.shape
        n, n_out = w_h.shape[1], w_o.shape[1]
        m = n + n_in + 1
        # z_t = [r_{t-1}, x_t, 1] for t = 0..T; z_T = [r_{T-1}, 0, 1] lets the
        # backward's single matmul include the readout's gradients.
        z = _buffer(workspace, "z", (k, n_steps + 1, n_batch, m), x_kxtxbxi)
        z[:, 0, :, :n] = 0
        z[:, :n_steps, :, n:-1] = x_kxtxbxi
        z[:, n_steps, :, n:-1] = 0
        z[..., -1] = 1
        w_cat_t = torch.cat([w_h, w_x, b[:, :, None]], dim=2).transpose(1, 2)
        pre = x_kxtxbxi.new_empty(k, n_batch, n)
        pre_prev = x_kxtxbxi.new_empty(k, n_batch, n) if leak else None
        scratch = x_kxtxbxi.new_empty(k, n_batch, n)
        for t in range(n_steps):
            if leak and t:
                pre, pre_prev = pre_prev, pre
                torch.baddbmm(pre_prev, z[:, t], w_cat_t, beta=leak, out=pre)
            else:
                torch.bmm(z[:, t], w_cat_t, out=pre)
            _tanh(pre, z[:, t + 1, :, :n], scratch)
        # The readout, for all steps in one matmul (a strided view, no copy).
        rates_kxmxn = z[:, 1:].reshape(k, n_steps * n_batch, m)[:, :, :n]
        outputs = torch.baddbmm(c[:, None, :], rates_kxmxn, w_o.transpose(1, 2))
        ctx.save_for_backward(z, w_h, w_x, w_o)
        ctx.leak, ctx.workspace = leak, workspace
        return outputs.view(k, n_steps, n_batch, n_out), z[:, 1:, :, :n]

    @staticmethod
    def backward(ctx, grad_out, grad_rates):
        z, w_h, w_x, w_o = ctx.saved_tensors
        leak = ctx.leak
        k, n_steps_1, n_batch, m = z.shape
        n_steps = n_steps_1 - 1
        n, n_out = w_h.shape[1], w_o.shape[1]
        # e_t = [dL/dh_t, dL/dy_{t-1}] for t = 0..T, with dL/dh_T = 0 and
        # dL/dy_{-1} = 0.
        e = _buffer(ctx.workspace, "e", (k, n_steps + 1, n_batch, n + n_out), z)
        e[:, 0, :, n:] = 0
        e[:, 1:, :, n:] = 0 if grad_out is None else grad_out
        e[:, n_steps, :, :n] = 0
        w_ho = torch.cat([w_h, w_o], dim=1)
        carry = z.new_empty(k, n_batch, n)
        scratch = z.new_empty(k, n_batch, n)
        for t in range(n_steps - 1, -1, -1):
            # dL/dr_t = dL/dh_{t+1} W_h + dL/dy_t W_o (+ the rates' own grad)
            torch.bmm(e[:, t + 1], w_ho, out=carry)
            if grad_rates is not None:
                carry.add_(grad_rates[:, t])
            # dL/dh_t = dL/dr_t (1 - r_t^2) + leak * dL/dh_{t+1}
            r, d = z[:, t + 1, :, :n], e[:, t, :, :n]
            torch.mul(carry, r, out=scratch)
            torch.addcmul(carry, scratch, r, value=-1.0, out=d)
            if leak and t < n_steps - 1:
                d.add_(e[:, t + 1, :, :n], alpha=leak)
        # Rows: [dL/dh; dL/dy], columns: [r, x, 1] -> all weight gradients.
        g = torch.bmm(e.view(k, -1, n + n_out).transpose(1, 2), z.view(k, -1, m))
        grad_x = None
        if ctx.needs_input_grad[0]:
            e_h = e[:, :n_steps].reshape(k, n_steps * n_batch, n + n_out)[:, :, :n]
            grad_x = torch.bmm(e_h, w_x).view(k, n_steps, n_batch, -1)
        return (
            grad_x,
            g[:, :n, :n],
            g[:, :n, n:-1],
            g[:, :n, -1],
            g[:, n:, :n],
            g[:, n:, -1],
            None,
            None,
        )


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
        self,
        inputs: torch.Tensor,
        params: dict[str, torch.Tensor] | None = None,
        workspace: Workspace | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run networks on ``inputs``.

        inputs: ``[net, batch, time, in]`` (one stream per network) or
        ``[batch, time, in]`` (the same trials for every network).
        params: the parameters to run, e.g. ``self.weights(index)`` for a subset
        of networks (all networks by default).
        workspace: buffers to reuse across calls (see :class:`Workspace`; the
        hidden states returned are then overwritten by the next call).
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
        # Step-major memory ([net, time, batch, in]; a small copy, inputs are
        # few): each step's slice is then contiguous.
        x_kxtxbxi = inputs.to(p["w_h"].dtype).transpose(1, 2).contiguous()
        w_h, w_x, b, w_o, c = (p[name] for name in PARAM_NAMES)
        leak = 0.0
        if self.config.parameterization == "mup":
            # h_t = (1 - tau) h_{t-1} + tau W_h tanh(h_{t-1}) / N + tau W_x x_t,
            # y_t = W_o tanh(h_t) / (gamma N). The equation has no biases: b
            # and c are zero and, detached, take no part in any gradient.
            n, tau = self.config.n_hidden, self.config.tau
            w_h, w_x, leak = w_h * (tau / n), w_x * tau, 1.0 - tau
            w_o = w_o / (self.config.gamma * n)
            b, c = torch.zeros_like(b).detach(), torch.zeros_like(c).detach()
        outputs, rates = RecurrentNetwork.apply(
            x_kxtxbxi, w_h, w_x, b, w_o, c, leak, workspace
        )
        return outputs.transpose(1, 2), rates.transpose(1, 2)

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

import pytest
import torch

from degen.config import ConfigError
from degen.model import (
    Ensemble,
    ModelConfig,
    RecurrentNetwork,
    _tanh,
    network_reference,
    resolve_device,
)


def _network(gen, k, n, n_in, n_out, scale=0.6):
    """Random step-major inputs [k, t, b, in] and the five weights (float64)."""
    shapes = [(k, n, n), (k, n, n_in), (k, n), (k, n_out, n), (k, n_out)]
    weights = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    weights[0] = weights[0] * scale
    return weights


def _both(x_kxtxbxi, weights, leak, grad_x=False):
    """Run the fused function and the reference on fresh leaf copies."""
    runs = []
    for fn in ("fused", "reference"):
        x = x_kxtxbxi.clone().requires_grad_(grad_x)
        ws = [w.clone().requires_grad_() for w in weights]
        if fn == "fused":
            out, rates = RecurrentNetwork.apply(x, *ws, leak)
            out, rates = out.transpose(1, 2), rates.transpose(1, 2)
        else:
            out, rates = network_reference(x.transpose(1, 2), *ws, leak)
        runs.append((x, ws, out, rates))
    return runs


# leak 0 is the standard model; 0.9 = 1 - tau at the muP default tau = 0.1.
@pytest.mark.parametrize("leak", [0.0, 0.9, 0.5])
@pytest.mark.parametrize("through", ["outputs", "rates", "both"])
def test_the_fused_network_matches_the_autograd_reference(leak, through):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 9, 4, 2, generator=gen, dtype=torch.float64)
    weights = _network(gen, 3, 5, 2, 3)
    (x1, w1, out1, r1), (x2, w2, out2, r2) = _both(x, weights, leak, grad_x=True)
    assert torch.allclose(out1, out2, atol=1e-12)
    assert torch.allclose(r1, r2, atol=1e-12)
    g_out = torch.randn(out1.shape, generator=gen, dtype=torch.float64)
    g_rates = torch.randn(r1.shape, generator=gen, dtype=torch.float64)
    for out, rates in ((out1, r1), (out2, r2)):
        loss = 0.0
        if through in ("outputs", "both"):
            loss = loss + (out * g_out).sum()
        if through in ("rates", "both"):
            loss = loss + (rates * g_rates).sum()
        loss.backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-12)
    for a, b in zip(w1, w2, strict=True):
        # The readout has no gradient under autograd when only rates count.
        expected = torch.zeros_like(b) if b.grad is None else b.grad
        assert torch.allclose(a.grad, expected, atol=1e-12)


@pytest.mark.parametrize("leak", [0.0, 0.9])
def test_the_fused_network_passes_gradcheck(leak):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 3, 2, generator=gen, dtype=torch.float64)
    weights = [w.requires_grad_() for w in _network(gen, 2, 4, 2, 2)]
    x.requires_grad_()
    for which in (0, 1):
        assert torch.autograd.gradcheck(
            lambda *a, which=which: RecurrentNetwork.apply(*a, leak)[which],
            (x, *weights),
        )


def test_buffers_on_huge_pages_give_the_reference_values():
    # 2 x 65 x 32 x 131 doubles > 4 MB: the size from which the run asks for
    # huge pages for its two full-length buffers.
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 64, 32, 2, generator=gen, dtype=torch.float64)
    weights = _network(gen, 2, 128, 2, 3, scale=1 / 12)
    assert 2 * 65 * 32 * 131 * 8 >= 1 << 22
    (_, w1, out1, r1), (_, w2, out2, r2) = _both(x, weights, 0.9)
    assert torch.allclose(out1, out2, atol=1e-11)
    assert torch.allclose(r1, r2, atol=1e-12)
    out1.sum().backward()
    out2.sum().backward()
    for a, b in zip(w1, w2, strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-10, atol=1e-9)


def test_the_leak_changes_the_recurrence():
    # The two paths agreeing would mean nothing if the leak were ignored.
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 3, 2, generator=gen, dtype=torch.float64)
    weights = _network(gen, 2, 4, 2, 1, scale=1.0)
    without = RecurrentNetwork.apply(x, *weights, 0.0)[1]
    assert not torch.allclose(without, RecurrentNetwork.apply(x, *weights, 0.9)[1])
    # One step from h_{-1} = 0: the leak has nothing to act on yet.
    first = RecurrentNetwork.apply(x[:, :1], *weights, 0.9)[1]
    w_x, b = weights[1], weights[2]
    expected = torch.tanh(torch.einsum("kbi,kni->kbn", x[:, 0], w_x) + b[:, None])
    assert torch.allclose(first[:, 0], expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 3e-7), (torch.float64, 1e-15)])
def test_the_fast_tanh_is_tanh(dtype, atol):
    x = torch.linspace(-30, 30, 100_001, dtype=dtype)
    x = torch.cat([x, torch.tensor([0.0, 1e-30, -1e-8], dtype=dtype)])
    before = x.clone()
    out = _tanh(x, torch.empty_like(x), torch.empty_like(x))
    assert torch.equal(x, before)  # the input is left alone
    assert (out - torch.tanh(x)).abs().max() <= atol
    assert out.abs().max() <= 1.0 and out[-3] == 0.0


def test_each_network_is_drawn_from_its_own_seed():
    both = Ensemble(ModelConfig(8), 2, 3, seeds=[5, 9])
    alone = Ensemble(ModelConfig(8), 2, 3, seeds=[9])
    for name, p in both.state_tensors().items():
        assert torch.equal(p[1], alone.state_tensors()[name][0])
    assert not torch.equal(both.w_h[0], both.w_h[1])


def test_initialisation_is_uniform_within_one_over_sqrt_n():
    n = 64
    model = Ensemble(ModelConfig(n), 3, 3, seeds=[0, 1])
    bound = n**-0.5
    for p in model.state_tensors().values():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.9 * bound


def test_forward_shapes_and_shared_inputs():
    model = Ensemble(ModelConfig(6), 2, 3, seeds=[0, 1, 2])
    x = torch.randn(4, 7, 2)
    out_shared, h_shared = model(x)
    out_each, h_each = model(x.expand(3, 4, 7, 2))
    assert out_shared.shape == (3, 4, 7, 3) and h_shared.shape == (3, 4, 7, 6)
    assert torch.equal(out_shared, out_each) and torch.equal(h_shared, h_each)
    with pytest.raises(ValueError, match=r"\[3, batch, time, 2\]"):
        model(torch.randn(2, 4, 7, 2))


def test_hidden_state_follows_the_equation():
    model = Ensemble(ModelConfig(4), 1, 1, seeds=[0])
    x = torch.randn(1, 3, 1)
    out, h = model.run(x)
    w = model.state_tensors()
    h_prev = torch.zeros(4)
    for t in range(3):
        h_prev = torch.tanh(w["w_h"][0] @ h_prev + w["w_x"][0] @ x[0, t] + w["b"][0])
        assert torch.allclose(h[0, 0, t], h_prev, atol=1e-6)
        assert torch.allclose(out[0, 0, t], w["w_o"][0] @ h_prev + w["c"][0], atol=1e-6)


def test_bad_model_values_are_refused():
    with pytest.raises(ConfigError, match=r"n_hidden = -3"):
        ModelConfig(n_hidden=-3)
    with pytest.raises(
        ConfigError, match=r"parameterization = 'mup\?'.*'standard', 'mup'"
    ):
        ModelConfig(parameterization="mup?")
    with pytest.raises(ConfigError, match="empty"):
        Ensemble(ModelConfig(4), 1, 1, seeds=[])
    with pytest.raises(ConfigError, match="repeats"):
        Ensemble(ModelConfig(4), 1, 1, seeds=[1, 1])


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="--device cpu"):
            assert resolve_device("cuda").type == "cpu"

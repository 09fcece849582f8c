import pytest
import torch

from degen.config import ConfigError
from degen.model import (
    Ensemble,
    ModelConfig,
    Recurrence,
    _tanh,
    recurrence_reference,
    resolve_device,
)


# leak 0 is the standard model; 0.9 = 1 - tau at the muP default tau = 0.1.
@pytest.mark.parametrize("leak", [0.0, 0.9, 0.5])
def test_recurrence_matches_the_autograd_reference(leak):
    gen = torch.Generator().manual_seed(0)
    drive = torch.randn(3, 4, 9, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 5, 5, generator=gen, dtype=torch.float64) * 0.6
    d1, w1 = drive.clone().requires_grad_(), w.clone().requires_grad_()
    d2, w2 = drive.clone().requires_grad_(), w.clone().requires_grad_()
    h1 = Recurrence.apply(d1, w1, leak)
    h2 = recurrence_reference(d2, w2, leak)
    assert torch.allclose(h1, h2, atol=1e-12)
    weight = torch.randn(h1.shape, generator=gen, dtype=torch.float64)
    (h1 * weight).sum().backward()
    (h2 * weight).sum().backward()
    assert torch.allclose(d1.grad, d2.grad, atol=1e-12)
    assert torch.allclose(w1.grad, w2.grad, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda d, w: Recurrence.apply(d, w, leak), (d1[:, :2, :4], w1)
    )


def test_buffers_on_huge_pages_give_the_reference_values():
    # 2 x 32 x 64 x 128 doubles = 4 MB: the size from which the recurrence
    # asks for huge pages for its two full-length buffers.
    gen = torch.Generator().manual_seed(2)
    drive = torch.randn(2, 32, 64, 128, generator=gen, dtype=torch.float64)
    w = torch.randn(2, 128, 128, generator=gen, dtype=torch.float64) / 12
    assert drive.numel() * drive.element_size() >= 1 << 22
    d1, w1 = drive.clone().requires_grad_(), w.clone().requires_grad_()
    d2, w2 = drive.clone().requires_grad_(), w.clone().requires_grad_()
    h1 = Recurrence.apply(d1, w1, 0.9)
    h2 = recurrence_reference(d2, w2, 0.9)
    assert torch.allclose(h1, h2, atol=1e-12)
    h1.sum().backward()
    h2.sum().backward()
    assert torch.allclose(d1.grad, d2.grad, atol=1e-11)
    assert torch.allclose(w1.grad, w2.grad, atol=1e-10)


def test_the_leak_changes_the_recurrence():
    # The two paths agreeing would mean nothing if the leak were ignored.
    gen = torch.Generator().manual_seed(1)
    drive = torch.randn(2, 3, 6, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(2, 4, 4, generator=gen, dtype=torch.float64)
    assert not torch.allclose(
        Recurrence.apply(drive, w, 0.0), Recurrence.apply(drive, w, 0.9)
    )
    # One step from h_0 = 0: the leak has nothing to act on yet.
    first = Recurrence.apply(drive[:, :, :1], w, 0.9)
    assert torch.allclose(first, torch.tanh(drive[:, :, :1]), rtol=0, atol=1e-15)


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

import math

import numpy as np
import pytest
import torch

from degen.metrics.learning import (
    empirical_ntk,
    ntk_alignment,
    standard_forward,
    weight_change,
)
from degen.model import Ensemble, ModelConfig


def params_of(seeds, n_inputs=2, n_outputs=2, n_hidden=6):
    model = Ensemble(ModelConfig(n_hidden), n_inputs, n_outputs, seeds)
    return model.state_tensors()


def probe(n_batch=2, n_steps=4, n_inputs=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n_batch, n_steps, n_inputs, generator=gen)


def squared(params, inputs_bxtxo):
    """y = a^2 x / 2 per output channel: the NTK is diag(a^2 x x^T) by channel."""
    return 0.5 * params["a"][:, None, None, :] ** 2 * inputs_bxtxo[None]


def linear(params, inputs_bxtxi):
    """Linear in its parameters, so its NTK never changes."""
    return torch.einsum("bti,koi->kbto", inputs_bxtxi, params["w"])


# --- weight change -------------------------------------------------------------


def test_weight_change_is_zero_for_identical_weights():
    w = params_of([0, 1])["w_h"]
    np.testing.assert_array_equal(weight_change(w, w.clone()), [0.0, 0.0])


def test_weight_change_is_the_frobenius_norm_per_network():
    initial = np.zeros((3, 4, 4))
    final = initial.copy()
    final[1] += 1.0  # 16 entries moved by 1: norm 4
    final[2, 0, 0] = -3.0
    final[2, 1, 2] = 4.0  # 3-4-5
    np.testing.assert_allclose(weight_change(initial, final), [0.0, 4.0, 5.0])


def test_weight_change_leaves_its_inputs_alone():
    a, b = params_of([0, 1])["w_h"], params_of([2, 3])["w_h"]
    a0, b0 = a.clone(), b.clone()
    weight_change(a, b)
    assert torch.equal(a, a0) and torch.equal(b, b0)


@pytest.mark.parametrize("shapes", [((2, 3, 3), (2, 3, 4)), ((3,), (3,))])
def test_weight_change_rejects_mismatched_or_flat_weights(shapes):
    with pytest.raises(ValueError, match=r"expected equal shapes \[net, \.\.\.\]"):
        weight_change(np.zeros(shapes[0]), np.zeros(shapes[1]))


# --- NTK alignment -------------------------------------------------------------


def test_alignment_of_a_network_with_itself_is_one():
    params = params_of([0, 1, 2])
    out = ntk_alignment(params, params, probe())
    assert out.shape == (3,)
    np.testing.assert_allclose(out, 1.0, atol=1e-12)


def test_alignment_of_different_networks_lies_in_unit_interval_and_repeats():
    a, b, x = params_of([0, 1, 2]), params_of([5, 6, 7]), probe()
    out = ntk_alignment(a, b, x)
    assert ((out >= -1) & (out <= 1)).all()
    assert ((out > 0) & (out < 1 - 1e-6)).all()  # PSD kernels, and they differ
    np.testing.assert_array_equal(out, ntk_alignment(a, b, x))


def test_known_rescaling_gives_a_known_alignment():
    x = torch.ones(3, 2, 2)  # [batch, time, out]: K = diag(a_o^2) blocks of ones
    a0 = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    at = torch.tensor([[2.0, 2.0], [math.sqrt(3), 1.0], [0.0, 1.0]])
    out = ntk_alignment({"a": a0}, {"a": at}, x, forward=squared)
    # Whole kernel scaled by 4: 1. One channel's block scaled by 3:
    # (3 + 1) / sqrt((9 + 1) * 2). Disjoint channels: 0.
    np.testing.assert_allclose(out, [1.0, 4 / math.sqrt(20), 0.0], atol=1e-12)


def test_a_model_linear_in_its_parameters_keeps_its_kernel():
    gen = torch.Generator().manual_seed(0)
    w0, wt = torch.randn(2, 3, 2, generator=gen), torch.randn(2, 3, 2, generator=gen)
    out = ntk_alignment({"w": w0}, {"w": wt}, probe(), forward=linear)
    np.testing.assert_allclose(out, 1.0, atol=1e-12)


def test_ntk_matches_a_network_by_network_jacobian():
    params, x = params_of([0, 1]), probe(n_steps=3)
    kernel = empirical_ntk(params, x)
    for k in range(2):
        one = {name: v[k : k + 1].double() for name, v in params.items()}
        names = list(one)

        def f(*flat, names=names):
            return standard_forward(dict(zip(names, flat, strict=True)), x.double())

        jac = torch.autograd.functional.jacobian(f, tuple(one[n] for n in names))
        jac = torch.cat([j.reshape(12, -1) for j in jac], dim=1)  # 2 * 3 * 2 rows
        torch.testing.assert_close(kernel[k], jac @ jac.T)
    torch.testing.assert_close(kernel, kernel.transpose(1, 2))
    assert (torch.linalg.eigvalsh(kernel) > -1e-9).all()


def test_chunks_give_the_same_alignment():
    a, b, x = params_of([0, 1, 2]), params_of([3, 4, 5]), probe()
    np.testing.assert_allclose(
        ntk_alignment(a, b, x, chunk=1), ntk_alignment(a, b, x, chunk=8), rtol=1e-12
    )


def test_alignment_leaves_its_inputs_alone():
    a, b, x = params_of([0, 1]), params_of([2, 3]), probe()
    a["w_h"].requires_grad_(True)
    copies = (
        {k: v.clone() for k, v in a.items()},
        {k: v.clone() for k, v in b.items()},
    )
    x0 = x.clone()
    ntk_alignment(a, b, x)
    for before, after in zip(copies, (a, b), strict=True):
        for name in before:
            assert torch.equal(before[name], after[name])
            assert after[name].dtype == torch.float32 and after[name].grad is None
    assert a["w_h"].requires_grad and not b["w_h"].requires_grad
    assert torch.equal(x, x0)


def test_a_zero_kernel_warns_and_gives_nan():
    def flat(params, inputs):
        return 0.0 * params["a"][:, None, None, :] * inputs[None]

    a = torch.ones(2, 1)
    with pytest.warns(UserWarning, match=r"networks \[0, 1\] have a zero NTK"):
        out = ntk_alignment({"a": a}, {"a": a}, torch.ones(1, 2, 1), forward=flat)
    assert np.isnan(out).all()


def test_alignment_rejects_mismatched_params():
    a, b = params_of([0, 1]), params_of([2, 3])
    with pytest.raises(ValueError, match="expected the same"):
        ntk_alignment(a, {k: v for k, v in b.items() if k != "c"}, probe())
    with pytest.raises(ValueError, match=r"params\['w_h'\] has shape"):
        ntk_alignment(a, {**b, "w_h": b["w_h"][:1]}, probe())
    with pytest.raises(ValueError, match=r"leading \(network\) axis sizes"):
        ntk_alignment({**a, "c": a["c"][:1]}, {**b, "c": b["c"][:1]}, probe())
    with pytest.raises(ValueError, match=r"leading \(network\) axis sizes are \{\}"):
        ntk_alignment({}, {}, probe())


@pytest.mark.parametrize("chunk", [0, 1.5, True])
def test_alignment_rejects_a_bad_chunk(chunk):
    a = params_of([0])
    with pytest.raises(ValueError, match=rf"chunk = {chunk!r}; it must be"):
        ntk_alignment(a, a, probe(), chunk=chunk)


def test_ntk_rejects_bad_probes_and_forwards():
    a = params_of([0, 1])
    with pytest.raises(ValueError, match=r"expected \[batch, time, in\]"):
        empirical_ntk(a, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"forward returned shape \(2, 4, 2\)"):
        empirical_ntk(a, probe(), forward=lambda p, x: standard_forward(p, x)[:, 0])
    with pytest.raises(ValueError, match=r"params lack \['b', 'c'\]"):
        empirical_ntk({k: a[k] for k in ("w_h", "w_x", "w_o")}, probe())

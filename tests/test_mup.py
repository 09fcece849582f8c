"""The mean-field (muP) parameterization: its equation, initialisation,
learning-rate scaling, validation, and that gamma controls feature learning."""

import dataclasses

import numpy as np
import pytest
import torch

from degen.config import ConfigError, from_dict, to_dict
from degen.experiment import Condition
from degen.metrics.learning import ntk_alignment, weight_change
from degen.model import Ensemble, ModelConfig
from degen.store import Store
from degen.tasks import make_task, task_config
from degen.train import TrainConfig, train_ensemble

TASK = {"n_bits": 1, "n_steps": 12, "p_switch": 0.2}


def _mup(n=8, gamma=1.0, tau=0.1, seeds=(0, 1), n_in=2, n_out=2):
    config = ModelConfig(n, "mup", gamma=gamma, tau=tau)
    return Ensemble(config, n_in, n_out, seeds=list(seeds), dtype=torch.float64)


def test_mup_follows_the_paper_equation():
    n, gamma, tau = 5, 2.5, 0.3
    model = _mup(n, gamma, tau, n_in=3, n_out=2)
    x = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(0))
    out, rates = model.run(x.double())
    w = model.state_tensors()
    for k in range(2):
        h = torch.zeros(4, n, dtype=torch.float64)
        for t in range(7):
            # h(t+1) = h(t) + tau * (-h(t) + J tanh(h(t)) / N + U x(t))
            recurrent = torch.tanh(h) @ w["w_h"][k].T / n
            h = h + tau * (-h + recurrent + x[:, t].double() @ w["w_x"][k].T)
            y = torch.tanh(h) @ w["w_o"][k].T / (gamma * n)
            assert torch.allclose(rates[k, :, t], torch.tanh(h), atol=1e-12)
            assert torch.allclose(out[k, :, t], y, atol=1e-12)


def test_mup_initialisation_has_the_paper_variances():
    n = 256
    model = _mup(n, n_in=3, n_out=3)
    w = model.state_tensors()
    # J_ij ~ Normal(0, N); 2 x 65,536 draws estimate the variance to ~0.4%.
    assert w["w_h"].var().item() == pytest.approx(n, rel=0.03)
    assert abs(w["w_h"].mean().item()) < 0.05 * n**0.5
    # W_x and W_o ~ Normal(0, 1): 1,536 draws each, ~4% standard error.
    for name in ("w_x", "w_o"):
        assert w[name].var().item() == pytest.approx(1.0, rel=0.2), name
    assert not w["b"].any() and not w["c"].any()


def test_each_mup_network_is_drawn_from_its_own_seed():
    both, alone = _mup(seeds=(5, 9)), _mup(seeds=(9,))
    for name, value in both.state_tensors().items():
        assert torch.equal(value[1], alone.state_tensors()[name][0]), name
    assert not torch.equal(both.w_h[0], both.w_h[1])
    again = _mup(seeds=(5, 9))
    for name, value in both.state_tensors().items():
        assert torch.equal(value, again.state_tensors()[name]), name


@pytest.mark.parametrize("field, value", [("gamma", 3.0), ("tau", 0.5)])
def test_every_mup_field_changes_the_outputs(field, value):
    x = torch.randn(2, 6, 2, generator=torch.Generator().manual_seed(3))
    base = _mup().run(x.double())[0]
    changed = _mup(**{field: value}).run(x.double())[0]
    assert not torch.allclose(base, changed)


@pytest.mark.parametrize("gamma", [0.5, 4.0])
def test_gamma_scales_adams_learning_rate(gamma):
    # Adam's first step moves every parameter by lr * g / (|g| + eps), i.e.
    # by the learning rate itself wherever the gradient is not tiny.
    eta_0 = 1e-3
    model = _mup(gamma=gamma, n_out=2)
    config = TrainConfig(
        lr=eta_0, batch_size=4, steps_per_epoch=1, max_epochs=1, clip_grad_norm=0
    )
    result = train_ensemble(model, make_task("flipflop", {**TASK, "n_bits": 2}), config)
    for name in ("w_h", "w_x", "w_o"):
        step = (result.final[name] - result.initial[name]).abs()
        assert step.max().item() == pytest.approx(gamma * eta_0, rel=1e-4), name
    np.testing.assert_allclose(result.final_lr, gamma * eta_0)
    # The muP equation has no biases: they stay zero.
    assert not result.final["b"].any() and not result.final["c"].any()


def test_larger_gamma_means_more_feature_learning():
    """Weight change ||W_T - W_0||_F rises and NTK alignment falls with gamma,
    network by network (same seeds, same data, same base learning rate)."""
    task = make_task("flipflop", TASK)
    config = TrainConfig(lr=1e-2, batch_size=8, steps_per_epoch=10, max_epochs=3)
    probe = task.sample(2, torch.Generator().manual_seed(99)).inputs
    change, alignment = [], []
    for gamma in (0.1, 1.0, 10.0):
        model = _mup(16, gamma, n_in=task.n_inputs, n_out=task.n_outputs)
        result = train_ensemble(model, task, config, threshold=1e-9)
        change.append(weight_change(result.initial["w_h"], result.final["w_h"]))

        def forward(params, inputs, model=model):
            return model(inputs, params)[0]

        alignment.append(ntk_alignment(result.initial, result.final, probe, forward))
    change, alignment = np.array(change), np.array(alignment)  # [gamma, net]
    assert (np.diff(change, axis=0) > 0).all(), change
    assert (np.diff(alignment, axis=0) < 0).all(), alignment
    # The extremes are far apart: lazy at 0.1, rich at 10.
    assert (alignment[0] > 0.999).all() and (alignment[-1] < 0.9).all(), alignment


def test_parameterization_is_part_of_the_stored_config():
    values = to_dict(ModelConfig(32, "mup", gamma=2.0))
    assert values == {
        "n_hidden": 32,
        "parameterization": "mup",
        "gamma": 2.0,
        "tau": 0.1,
    }
    assert from_dict(ModelConfig, values) == ModelConfig(32, "mup", gamma=2.0)
    # An integer gamma is the same config (and store key) as the float.
    assert to_dict(ModelConfig(32, "mup", gamma=2)) == values
    store = Store("unused")
    keys = set()
    for model in (ModelConfig(32), ModelConfig(32, "mup"), ModelConfig(32, "mup", 2.0)):
        cond = Condition(
            "flipflop", task_config("flipflop", TASK), model, TrainConfig(), (0, 1)
        )
        assert Condition.from_dict(cond.to_dict()) == cond
        keys.add(store.key("ensemble", cond.to_dict()))
    assert len(keys) == 3


def test_lr_scale_and_trained_parameters():
    standard, mup = ModelConfig(8), ModelConfig(8, "mup", gamma=3.0)
    assert standard.lr_scale == 1.0 and mup.lr_scale == 3.0
    assert standard.trained_names == ("w_h", "w_x", "b", "w_o", "c")
    assert mup.trained_names == ("w_h", "w_x", "w_o")


@pytest.mark.parametrize(
    "values, words",
    [
        ({"parameterization": "mup", "gamma": 0.0}, ["gamma = 0.0", "(0.0, inf]"]),
        ({"parameterization": "mup", "gamma": -1.0}, ["gamma = -1.0"]),
        ({"parameterization": "mup", "gamma": float("nan")}, ["gamma = nan"]),
        ({"parameterization": "mup", "gamma": "big"}, ["gamma = 'big'", "float"]),
        ({"parameterization": "mup", "gamma": True}, ["gamma = True", "float"]),
        ({"parameterization": "mup", "tau": 0.0}, ["tau = 0.0", "(0.0, 1.0]"]),
        ({"parameterization": "mup", "tau": 1.5}, ["tau = 1.5", "(0.0, 1.0]"]),
        ({"gamma": 2.0}, ["gamma = 2.0", "no effect", "'mup'"]),
        ({"tau": 0.5}, ["tau = 0.5", "no effect", "'mup'"]),
    ],
)
def test_bad_mup_values_are_refused(values, words):
    with pytest.raises(ConfigError) as err:
        ModelConfig(8, **values)
    for word in words:
        assert word in str(err.value)


def test_tau_one_is_accepted_and_has_no_leak():
    # tau = 1: h_t = J tanh(h_{t-1}) / N + U x_t, no memory of h_{t-1} itself.
    model = _mup(4, tau=1.0, seeds=(0,), n_in=1, n_out=1)
    x = torch.randn(1, 3, 1, dtype=torch.float64)
    _, rates = model.run(x)
    w = model.state_tensors()
    h = w["w_h"][0] @ rates[0, 0, 0] / 4 + w["w_x"][0] @ x[0, 1]
    assert torch.allclose(rates[0, 0, 1], torch.tanh(h), atol=1e-12)


def test_mup_outputs_shrink_with_width_at_initialisation():
    # y = W_o tanh(h) / (gamma N) with W_o ~ N(0, 1): at init, std(y) falls as
    # 1/sqrt(N), so quadrupling N about halves it.
    x = torch.randn(16, 10, 2, generator=torch.Generator().manual_seed(4))
    seeds = tuple(range(8))
    small = _mup(64, seeds=seeds).run(x.double())[0].std().item()
    large = _mup(256, seeds=seeds).run(x.double())[0].std().item()
    assert large / small == pytest.approx(0.5, rel=0.25)


def test_an_ensemble_of_mup_networks_equals_them_alone():
    task = make_task("flipflop", TASK)
    config = TrainConfig(lr=1e-2, batch_size=4, steps_per_epoch=3, max_epochs=2)
    together = train_ensemble(
        _mup(gamma=2.0, seeds=(3, 7), n_out=1, n_in=1), task, config
    )
    for k, seed in enumerate((3, 7)):
        model = _mup(gamma=2.0, seeds=(seed,), n_out=1, n_in=1)
        alone = train_ensemble(model, task, config)
        for name, value in together.final.items():
            assert torch.allclose(value[k], alone.final[name][0], atol=1e-12), name


def test_standard_default_is_unchanged_by_the_new_fields():
    # The default config is the standard model with the muP knobs at rest.
    assert ModelConfig() == dataclasses.replace(ModelConfig(), gamma=1.0, tau=0.1)
    assert ModelConfig().parameterization == "standard"

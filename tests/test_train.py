import dataclasses

import numpy as np
import pytest
import torch

from degen.config import ConfigError
from degen.model import Ensemble, ModelConfig
from degen.tasks import make_task
from degen.tasks.flipflop import FlipFlopConfig
from degen.train import (
    EnsembleAdam,
    EnsemblePlateau,
    TrainConfig,
    clip_per_network,
    train_ensemble,
)

TASK = {"n_bits": 2, "n_steps": 12, "p_switch": 0.2}
SHORT = TrainConfig(lr=1e-2, batch_size=8, steps_per_epoch=5, max_epochs=3)


def _train(seeds, config=SHORT, task=TASK, n_hidden=8, threshold=None, model=None):
    model_config = model or ModelConfig(n_hidden)
    model = Ensemble(model_config, 2, 2, seeds=seeds, dtype=torch.float64)
    result = train_ensemble(model, make_task("flipflop", task), config, threshold)
    return model, result


@pytest.mark.parametrize(
    "config, model",
    [
        (SHORT, None),
        (dataclasses.replace(SHORT, nuclear_lambda=0.05, l1_lambda=0.01), None),
        (dataclasses.replace(SHORT, nuclear_lambda=0.05), ModelConfig(8, "mup", 2.0)),
    ],
    ids=["plain", "regularized", "mup-regularized"],
)
def test_an_ensemble_equals_its_networks_trained_alone(config, model):
    seeds = [3, 7, 11]
    _, together = _train(seeds, config, model=model)
    for k, seed in enumerate(seeds):
        _, alone = _train([seed], config, model=model)
        for name, value in together.final.items():
            assert torch.allclose(value[k], alone.final[name][0], atol=1e-12), name
        np.testing.assert_allclose(
            together.step_loss[k], alone.step_loss[0], atol=1e-12
        )


def test_training_lowers_the_loss_and_keeps_the_initial_weights():
    model, result = _train([0, 1], dataclasses.replace(SHORT, max_epochs=6))
    assert (result.epoch_loss[:, -1] < result.epoch_loss[:, 0]).all()
    assert not torch.equal(result.initial["w_h"], result.final["w_h"])
    fresh = Ensemble(ModelConfig(8), 2, 2, seeds=[0, 1], dtype=torch.float64)
    assert torch.equal(result.initial["w_h"], fresh.w_h.detach())


def test_a_converged_network_stops_after_patience_and_stops_changing():
    # A threshold every network passes in its first epoch.
    config = dataclasses.replace(SHORT, max_epochs=10, patience=2)
    _, result = _train([0, 1], config, threshold=10.0)
    assert result.converged.all()
    np.testing.assert_array_equal(result.converged_epoch, [0, 0])
    np.testing.assert_array_equal(result.epochs_trained, [3, 3])
    assert np.isnan(result.epoch_loss[:, 3:]).all()
    # Patience epochs are really trained: more epochs, different weights.
    _, longer = _train([0, 1], dataclasses.replace(config, patience=4), threshold=10.0)
    assert not torch.equal(result.final["w_h"], longer.final["w_h"])


def test_frozen_network_is_untouched_while_others_train():
    # Network 0 converges at once (threshold high for it only is not possible,
    # so compare against training it alone with the same freeze point).
    config = dataclasses.replace(SHORT, max_epochs=4, patience=0)
    _, result = _train([0, 1], config, threshold=10.0)
    _, alone = _train([0], dataclasses.replace(config, max_epochs=1), threshold=10.0)
    assert torch.equal(result.final["w_h"][0], alone.final["w_h"][0])


def test_unconverged_networks_are_flagged():
    _, result = _train([0, 1], threshold=1e-12)
    assert not result.converged.any()
    np.testing.assert_array_equal(result.converged_epoch, [-1, -1])
    np.testing.assert_array_equal(result.epochs_trained, [3, 3])


def test_a_diverged_network_is_frozen_and_the_others_train_unharmed():
    model = Ensemble(ModelConfig(8), 2, 2, seeds=[0, 1], dtype=torch.float64)
    with torch.no_grad():
        model.w_o[0, 0, 0] = float("nan")
    result = train_ensemble(model, make_task("flipflop", TASK), SHORT)
    assert result.diverged.tolist() == [True, False]
    assert not result.converged[0]
    _, alone = _train([1])
    assert torch.allclose(result.final["w_h"][1], alone.final["w_h"][0], atol=1e-12)
    assert torch.equal(result.final["w_h"][0], result.initial["w_h"][0])


def test_ensemble_adam_matches_torch_adam_per_network():
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(2, 3, 3, generator=gen, dtype=torch.float64)
    grads = [torch.randn(2, 3, 3, generator=gen, dtype=torch.float64) for _ in range(5)]
    mine = {"w": p0.clone()}
    lr = torch.tensor([1e-2, 3e-3], dtype=torch.float64)
    adam = EnsembleAdam(mine, lr, (0.9, 0.999), 1e-8)
    for g in grads:
        adam.step({"w": g.clone()}, torch.tensor([0, 1]))
    for k in range(2):
        ref = p0[k].clone().requires_grad_()
        opt = torch.optim.Adam([ref], lr=float(lr[k]))
        for g in grads:
            ref.grad = g[k].clone()
            opt.step()
        assert torch.allclose(mine["w"][k], ref.detach(), atol=1e-14)


def test_ensemble_adam_leaves_unlisted_networks_alone():
    p = {"w": torch.ones(3, 2)}
    adam = EnsembleAdam(p, torch.full((3,), 0.1), (0.9, 0.999), 1e-8)
    adam.step({"w": torch.ones(2, 2)}, torch.tensor([0, 2]))
    assert torch.equal(p["w"][1], torch.ones(2))
    assert not torch.equal(p["w"][0], torch.ones(2))
    assert adam.steps.tolist() == [1, 0, 1]


def test_plateau_matches_torch_reduce_lr_on_plateau():
    losses = [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6]
    lr = torch.tensor([1.0, 1.0], dtype=torch.float64)
    mine = EnsemblePlateau(lr, factor=0.5, patience=2)
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    for loss in losses:
        mine.step(np.array([loss, 0.0]), np.array([0]))
        ref.step(loss)
        assert float(lr[0]) == pytest.approx(opt.param_groups[0]["lr"])
    assert float(lr[1]) == 1.0  # not in the index: untouched


def test_clipping_matches_clip_grad_norm_per_network():
    gen = torch.Generator().manual_seed(1)
    grads = {
        "a": torch.randn(2, 4, 4, generator=gen) * 3,
        "b": torch.randn(2, 4, generator=gen) * 0.01,
    }
    grads["a"][1] *= 1e-3  # network 1 is under the bound: unchanged
    expected = []
    for k in range(2):
        ps = [torch.zeros(4, 4, requires_grad=True), torch.zeros(4, requires_grad=True)]
        ps[0].grad, ps[1].grad = grads["a"][k].clone(), grads["b"][k].clone()
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        expected.append([p.grad for p in ps])
    clip_per_network(grads, 1.0)
    for k in range(2):
        assert torch.allclose(grads["a"][k], expected[k][0], atol=1e-6)
        assert torch.allclose(grads["b"][k], expected[k][1], atol=1e-6)


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", 0.2),
        ("batch_size", 4),
        ("steps_per_epoch", 3),
        ("max_epochs", 2),
        ("clip_grad_norm", 0.0),
        ("plateau_factor", 0.1),
        ("plateau_patience", 3),
        ("adam_betas", (0.5, 0.9)),
        ("adam_eps", 1e-3),
        ("nuclear_lambda", 0.01),
        ("l1_lambda", 0.01),
    ],
)
def test_every_train_field_changes_the_outcome(field, value):
    # One noisy step per epoch, so that plateaus (and LR cuts) happen.
    config = TrainConfig(
        lr=1e-2,
        batch_size=2,
        steps_per_epoch=1,
        max_epochs=8,
        plateau_patience=0,
        clip_grad_norm=0.05,
    )
    _, base = _train([0], config)
    _, changed = _train([0], dataclasses.replace(config, **{field: value}))
    assert not torch.equal(base.final["w_h"], changed.final["w_h"])


@pytest.mark.parametrize(
    "values, words",
    [
        ({"lr": -1.0}, ["lr", "-1.0"]),
        ({"batch_size": 0}, ["batch_size", "0"]),
        ({"plateau_factor": 1.0}, ["plateau_factor", "1.0", "(0.0, 1.0)"]),
        ({"adam_betas": (0.9, 1.0)}, ["adam_betas[1]", "1.0"]),
        ({"patience": -1}, ["patience", "-1"]),
        ({"nuclear_lambda": -0.1}, ["nuclear_lambda", "-0.1", "[0.0, inf]"]),
        ({"l1_lambda": float("inf")}, ["l1_lambda", "inf", "finite"]),
    ],
)
def test_bad_train_values_name_the_field(values, words):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**values)
    for word in words:
        assert word in str(err.value)


def test_bad_threshold_is_refused():
    model = Ensemble(ModelConfig(4), 2, 2, seeds=[0])
    with pytest.raises(ConfigError, match=r"threshold = -1"):
        train_ensemble(model, make_task("flipflop", TASK), SHORT, threshold=-1)


def test_a_network_with_an_infinite_gradient_is_flagged(monkeypatch):
    import degen.train as train_module

    real = train_module.clip_per_network

    def poison(grads, max_norm):
        real(grads, max_norm)
        if grads["w_h"].shape[0] == 2:  # network 1, while both train
            grads["w_h"][1, 0, 0] = float("inf")

    monkeypatch.setattr(train_module, "clip_per_network", poison)
    model = Ensemble(ModelConfig(8), 2, 2, seeds=[0, 1], dtype=torch.float64)
    result = train_ensemble(model, make_task("flipflop", TASK), SHORT)
    assert result.diverged.tolist() == [False, True]
    assert torch.isfinite(result.final["w_h"]).all()


@pytest.mark.parametrize(
    "build, named",
    [
        (lambda: TrainConfig(nuclear_lambda="0.1"), "TrainConfig.nuclear_lambda"),
        (lambda: TrainConfig(nuclear_lambda=True), "TrainConfig.nuclear_lambda"),
        (lambda: TrainConfig(batch_size=8.5), "TrainConfig.batch_size"),
        (lambda: TrainConfig(adam_betas=(0.9,)), "tuple[float, float]"),
        (lambda: TrainConfig(lr=None), "TrainConfig.lr"),
        (lambda: ModelConfig(n_hidden=8.5), "ModelConfig.n_hidden"),
        (lambda: ModelConfig(n_hidden=True), "ModelConfig.n_hidden"),
        (lambda: ModelConfig(n_hidden="8"), "ModelConfig.n_hidden"),
        (lambda: FlipFlopConfig(n_bits=2.0), "FlipFlopConfig.n_bits"),
    ],
)
def test_configs_built_directly_check_their_types(build, named):
    # The profile loader checks types; a config built in Python must too,
    # instead of failing later inside torch.
    with pytest.raises(ConfigError, match=r"has type .*; expected") as err:
        build()
    assert named in str(err.value)


def test_ints_stay_valid_where_floats_are_expected():
    assert TrainConfig(lr=1, nuclear_lambda=0).lr == 1
    assert ModelConfig(64, "mup", gamma=2).gamma == 2

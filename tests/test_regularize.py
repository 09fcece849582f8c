"""Structural regularizers on W_h: the penalty's known values, lambda = 0 is
exactly unregularized training, the nuclear norm lowers the effective rank of
W_h and L1 drives its entries toward zero."""

import dataclasses

import numpy as np
import pytest
import torch

import degen.train as train_module
from degen.model import PARAM_NAMES, Ensemble, ModelConfig
from degen.tasks import make_task
from degen.train import TrainConfig, regularization, train_ensemble

TASK = {"n_bits": 2, "n_steps": 12, "p_switch": 0.2}
BASE = TrainConfig(lr=1e-2, batch_size=8, steps_per_epoch=10, max_epochs=4)


def effective_rank(w_kxnxn) -> np.ndarray:
    """exp of the Shannon entropy of the normalised singular values
    ``p_i = s_i / sum_j s_j`` (Roy & Vetterli 2007): n for a matrix whose
    singular values are all equal, 1 for a rank-one matrix. ``[net]``."""
    s = np.linalg.svd(np.asarray(w_kxnxn, dtype=np.float64), compute_uv=False)
    p = s / s.sum(axis=-1, keepdims=True)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return np.exp(-plogp.sum(axis=-1))


def _train(config, seeds=(0, 1), n_hidden=16):
    model = Ensemble(ModelConfig(n_hidden), 2, 2, list(seeds), dtype=torch.float64)
    return train_ensemble(model, make_task("flipflop", TASK), config, threshold=1e-9)


def test_effective_rank_known_values():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    rank_one = np.outer(np.arange(1.0, 7.0), np.ones(6))
    low = np.diag([2.0, 2.0, 0, 0, 0, 0])
    np.testing.assert_allclose(
        effective_rank(np.stack([3 * q, rank_one, low])), [6.0, 1.0, 2.0], atol=1e-6
    )


def test_penalty_values_are_the_nuclear_and_l1_norms():
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen))
    w = torch.stack([torch.diag(torch.tensor([3.0, -2, 1, 0, 0.5])), u[:, None] * v, q])
    nuclear = torch.tensor([6.5, float(u.norm() * v.norm()), 5.0])
    l1 = w.abs().sum((1, 2))
    only_nuclear = regularization(w, TrainConfig(nuclear_lambda=0.1))
    assert torch.allclose(only_nuclear, 0.1 * nuclear, atol=1e-5)
    only_l1 = regularization(w, TrainConfig(l1_lambda=0.3))
    assert torch.allclose(only_l1, 0.3 * l1, atol=1e-6)
    assert torch.allclose(only_l1[0], torch.tensor(0.3 * 6.5))
    both = regularization(w, TrainConfig(nuclear_lambda=0.1, l1_lambda=0.3))
    assert torch.allclose(both, 0.1 * nuclear + 0.3 * l1, atol=1e-5)
    assert regularization(w, TrainConfig()) is None


def test_nuclear_gradient_is_u_v_transpose():
    # d/dW sum_i s_i(W) = U V^T where the singular values are distinct.
    w = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(1)).double()
    w.requires_grad_(True)
    regularization(w, TrainConfig(nuclear_lambda=1.0)).sum().backward()
    u, _, vh = torch.linalg.svd(w.detach())
    assert torch.allclose(w.grad, u @ vh, atol=1e-10)


def test_nuclear_penalty_of_an_overflowed_w_h_is_nan_and_the_rest_unchanged():
    w = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(2))
    expected = 0.1 * torch.linalg.svdvals(w).sum(-1)
    w[1, 2, 3] = float("inf")
    penalty = regularization(w, TrainConfig(nuclear_lambda=0.1))
    assert torch.isnan(penalty[1])
    assert torch.allclose(penalty[[0, 2]], expected[[0, 2]])


def test_an_update_that_overflows_w_h_marks_the_network_diverged():
    # Adam moves each weight by about lr per step: 1e39 overflows float32, so
    # the second step's SVD sees an infinite W_h. That network must be
    # reported diverged, not stop the whole ensemble with a LinAlgError.
    model = Ensemble(ModelConfig(8), 2, 2, [0, 1])
    config = dataclasses.replace(BASE, lr=1e39, nuclear_lambda=0.01, max_epochs=1)
    result = train_ensemble(model, make_task("flipflop", TASK), config, threshold=1e-9)
    assert result.diverged.all()
    assert not result.converged.any()


@pytest.mark.parametrize("model", [ModelConfig(8), ModelConfig(8, "mup", 2.0)])
def test_lambda_zero_is_bit_identical_to_no_regularizer(model, monkeypatch):
    config = dataclasses.replace(BASE, max_epochs=2)

    def run(cfg):
        ens = Ensemble(model, 2, 2, [0, 1], dtype=torch.float64)
        task = make_task("flipflop", TASK)
        return train_ensemble(ens, task, cfg, threshold=1e-9)

    explicit = run(dataclasses.replace(config, nuclear_lambda=0.0, l1_lambda=0.0))
    tiny = run(dataclasses.replace(config, nuclear_lambda=1e-6))
    # The trainer with the penalty removed from its code path altogether.
    monkeypatch.setattr(train_module, "regularization", lambda w, cfg: None)
    without = run(config)
    for name in PARAM_NAMES:
        assert torch.equal(explicit.final[name], without.final[name]), name
    np.testing.assert_array_equal(explicit.step_loss, without.step_loss)
    # A penalty however small does change the networks: the test can fail.
    assert not torch.equal(tiny.final["w_h"], without.final["w_h"])


def test_recorded_loss_is_the_task_loss_alone():
    # Same initial weights and first batch: the first recorded loss is the
    # same MSE whatever the penalty (the update comes after it).
    plain = _train(dataclasses.replace(BASE, max_epochs=1))
    heavy = _train(dataclasses.replace(BASE, max_epochs=1, nuclear_lambda=10.0))
    np.testing.assert_array_equal(plain.step_loss[:, 0], heavy.step_loss[:, 0])
    assert not np.array_equal(plain.step_loss[:, 1:], heavy.step_loss[:, 1:])


def test_nuclear_norm_lowers_the_effective_rank_of_w_h():
    ranks = np.array(
        [
            effective_rank(
                _train(dataclasses.replace(BASE, nuclear_lambda=lam)).final["w_h"]
            )
            for lam in (0.0, 0.01, 0.1)
        ]
    )  # [lambda, net]
    assert (np.diff(ranks, axis=0) < 0).all(), ranks
    assert (ranks[-1] < 0.5 * ranks[0]).all(), ranks


def test_l1_drives_w_h_toward_zero():
    finals = [
        _train(dataclasses.replace(BASE, l1_lambda=lam)).final["w_h"].numpy()
        for lam in (0.0, 0.01, 0.1)
    ]
    mean_abs = np.array([np.abs(w).mean(axis=(1, 2)) for w in finals])  # [lam, net]
    near_zero = np.array([(np.abs(w) < 1e-2).mean(axis=(1, 2)) for w in finals])
    assert (np.diff(mean_abs, axis=0) < 0).all(), mean_abs
    assert (np.diff(near_zero, axis=0) > 0).all(), near_zero
    # At the strongest penalty most entries sit within 0.01 of zero (the
    # initial bound is 1/sqrt(16) = 0.25; Adam's steps of 0.01 keep them
    # hovering there rather than exactly at zero).
    assert (near_zero[-1] > 0.5).all(), near_zero

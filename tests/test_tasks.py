import dataclasses

import pytest
import torch

from degen.config import ConfigError
from degen.tasks import FlipFlopConfig, make_task, masked_mse, task_config


def held_reference(inputs_bxtxc):
    """Slow, obvious flip-flop target: walk each trial and hold the last pulse."""
    b, t, c = inputs_bxtxc.shape
    out = torch.zeros_like(inputs_bxtxc)
    for i in range(b):
        for ch in range(c):
            state = 0.0
            for s in range(t):
                if inputs_bxtxc[i, s, ch] != 0:
                    state = float(torch.sign(inputs_bxtxc[i, s, ch]))
                out[i, s, ch] = state
    return out


@pytest.mark.parametrize("first_pulse", [True, False])
def test_flipflop_targets_hold_the_last_pulse(first_pulse):
    task = make_task(
        "flipflop",
        {"n_bits": 3, "n_steps": 40, "p_switch": 0.1, "first_pulse": first_pulse},
    )
    batch = task.sample(16, torch.Generator().manual_seed(3))
    assert batch.inputs.shape == (16, 40, 3)
    assert batch.targets.shape == (16, 40, 3)
    assert torch.equal(batch.targets, held_reference(batch.inputs))
    assert set(batch.inputs.unique().tolist()) <= {-1.0, 0.0, 1.0}
    if first_pulse:
        assert (batch.inputs[:, 0] != 0).all()
        assert (batch.targets != 0).all()


def test_flipflop_ood_is_twice_as_long_and_keeps_every_setting():
    task = make_task("flipflop", {"n_bits": 2, "n_steps": 30, "p_switch": 0.2})
    ood = task.ood()
    assert ood.config.n_steps == 60
    assert dataclasses.replace(ood.config, n_steps=30) == task.config
    batch = ood.sample(4, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == (4, 60, 2)
    assert torch.equal(batch.targets, held_reference(batch.inputs))


def test_flipflop_p_switch_and_noise_change_the_trials():
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    base = make_task("flipflop", {"n_bits": 2, "n_steps": 200}).sample(8, gen())
    busy = make_task("flipflop", {"n_bits": 2, "n_steps": 200, "p_switch": 0.5})
    assert (busy.sample(8, gen()).inputs != 0).float().mean() > (
        base.inputs != 0
    ).float().mean() * 3
    noisy = make_task("flipflop", {"n_bits": 2, "input_noise": 0.1}).sample(8, gen())
    assert not set(noisy.inputs.unique().tolist()) <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize(
    "values, words",
    [
        ({"n_bits": 0}, ["n_bits", "0", "[1"]),
        ({"p_switch": 1.5}, ["p_switch", "1.5", "1.0]"]),
        ({"p_switch": 0.0}, ["p_switch", "(0.0"]),
        ({"threshold": -1e-3}, ["threshold", "-0.001"]),
        ({"threshold": 0}, ["threshold", "(0.0"]),
        ({"input_noise": -0.1}, ["input_noise", "-0.1"]),
        ({"n_steps": 1}, ["n_steps", "1"]),
        ({"n_bitz": 3}, ["n_bitz", "valid keys", "n_bits"]),
        ({"n_bits": "3"}, ["n_bits", "'3'", "int"]),
        ({"n_bits": 2.5}, ["n_bits", "2.5", "int"]),
        ({"p_switch": float("nan")}, ["p_switch", "nan", "finite"]),
    ],
)
def test_bad_flipflop_values_name_the_field_and_the_range(values, words):
    with pytest.raises(ConfigError) as err:
        task_config("flipflop", values)
    for word in words:
        assert word in str(err.value)


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown task 'flipflip'.*flipflop"):
        make_task("flipflip")


def test_defaults_match_the_paper_threshold():
    assert FlipFlopConfig().threshold == 1e-3


def test_masked_mse_counts_only_scored_entries():
    out = torch.zeros(2, 1, 2, 1)  # [net, batch, time, out]
    target = torch.tensor([[[1.0], [3.0]]])
    mask = torch.tensor([[[1.0], [0.0]]])
    assert torch.allclose(masked_mse(out, target, mask), torch.tensor([1.0, 1.0]))

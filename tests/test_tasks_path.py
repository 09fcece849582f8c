import dataclasses

import pytest
import torch
from trials import gen

from degen.config import ConfigError
from degen.tasks import PathConfig, make_task, task_config
from degen.tasks.path import reflect


def given_velocity(inputs, config):
    """The velocity the network is told, decoded from the heading and speed."""
    x = inputs.double()
    if config.n_dims == 2:
        unit = x[..., :2]
        speed = x[..., 2:3]
    else:
        cos_az, sin_az, cos_el, sin_el = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
        unit = torch.stack([cos_el * cos_az, cos_el * sin_az, sin_el], -1)
        speed = x[..., 4:5]
    return unit * speed * config.max_speed


def start_of(inputs, config):
    return inputs[:, 0, -config.n_dims :].double() * config.half_width


@pytest.mark.parametrize("n_dims", [2, 3])
@pytest.mark.parametrize("half_width", [5.0, 1e3])  # many bounces / almost none
def test_path_target_is_the_start_plus_the_summed_velocity(n_dims, half_width):
    values = {"n_dims": n_dims, "n_steps": 80, "half_width": half_width}
    task = make_task("path", values)
    batch = task.sample(32, gen(n_dims))
    c = task.config
    assert batch.inputs.shape == (32, 80, task.n_inputs)
    assert task.n_inputs == (5 if n_dims == 2 else 8)
    assert batch.targets.shape == (32, 80, n_dims) and (batch.mask == 1).all()
    velocity = given_velocity(batch.inputs, c)
    expected = start_of(batch.inputs, c)[:, None] + velocity.cumsum(1)
    # Inputs and targets are float32: rounding grows with the arena's size.
    atol = 1e-4 + 1e-6 * half_width
    torch.testing.assert_close(batch.targets.double(), expected, atol=atol, rtol=0)
    assert batch.targets.abs().max() <= half_width
    if half_width == 5.0:  # some trials did meet a wall
        assert batch.targets.abs().max() > 4.5
    # Start channels carry the start at step 0 only; speed in [0, 1].
    assert (batch.inputs[:, 1:, -n_dims:] == 0).all()
    speed = batch.inputs[..., task.n_heading]
    assert speed.min() >= 0 and speed.max() <= 1


def test_path_reflects_at_the_walls():
    p = torch.tensor([0.0, 4.0, 5.5, -5.5, 12.0, 15.5, 25.0])
    expected = torch.tensor([0.0, 4.0, 4.5, -4.5, -2.0, -4.5, 5.0])
    torch.testing.assert_close(reflect(p, 5.0), expected)


def test_path_reflection_mirrors_the_heading():
    # A straight, fast run in a small arena must bounce: the heading reverses.
    values = {"n_dims": 2, "turn_sd": 0.0, "half_width": 1.0, "n_steps": 40}
    batch = make_task("path", values).sample(8, gen())
    cos = batch.inputs[..., 0]
    flips = (cos[:, 1:] * cos[:, :-1] < 0).sum(1)
    assert (flips > 0).all()


def test_path_headings_are_unit_and_straight_without_turning():
    task = make_task("path", {"n_dims": 3, "turn_sd": 0.0, "half_width": 1e4})
    x = task.sample(8, gen()).inputs
    torch.testing.assert_close(x[..., 0] ** 2 + x[..., 1] ** 2, torch.ones(8, 50))
    torch.testing.assert_close(x[..., 2] ** 2 + x[..., 3] ** 2, torch.ones(8, 50))
    assert (x[..., 2] >= 0).all()  # cos(elevation): elevation in [-pi/2, pi/2]
    heading = x[..., :4]
    torch.testing.assert_close(heading, heading[:, :1].expand_as(heading))


@pytest.mark.parametrize("n_dims", [2, 3])
def test_path_ood_is_twice_as_long_and_keeps_every_setting(n_dims):
    task = make_task("path", {"n_dims": n_dims, "n_steps": 30, "max_speed": 0.3})
    ood = task.ood()
    assert ood.config.n_steps == 60
    assert dataclasses.replace(ood.config, n_steps=30) == task.config
    batch = ood.sample(4, gen())
    assert batch.inputs.shape == (4, 60, task.n_inputs)
    expected = start_of(batch.inputs, ood.config)[:, None] + given_velocity(
        batch.inputs, ood.config
    ).cumsum(1)
    torch.testing.assert_close(batch.targets.double(), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "values, words",
    [
        ({"n_dims": 4}, ["n_dims", "4", "[2, 3]"]),
        ({"n_dims": 1}, ["n_dims", "1", "[2, 3]"]),
        ({"n_steps": 1}, ["n_steps", "1", "[2"]),
        ({"max_speed": 0.0}, ["max_speed", "0.0", "(0.0"]),
        ({"turn_sd": -0.1}, ["turn_sd", "-0.1", "[0.0"]),
        ({"half_width": -5.0}, ["half_width", "-5.0", "(0.0"]),
        ({"input_noise": -0.1}, ["input_noise", "-0.1", "[0.0"]),
        ({"threshold": 0}, ["threshold", "0", "(0.0"]),
        ({"threshold": -0.05}, ["threshold", "-0.05", "(0.0"]),
        ({"n_dim": 2}, ["n_dim", "valid keys", "n_dims"]),
        ({"half_width": float("inf")}, ["half_width", "inf", "finite"]),
    ],
)
def test_bad_path_values_name_the_field_and_the_range(values, words):
    with pytest.raises(ConfigError) as err:
        task_config("path", values)
    for word in words:
        assert word in str(err.value)


def test_path_defaults_match_the_paper():
    config = PathConfig()
    assert config.threshold == 0.05 and config.half_width == 5.0

"""What every task in the registry promises, checked the same way for each:
seeded sampling, every config field mattering, the threshold, and shapes an
ensemble accepts. Task-specific known answers live in the per-task files."""

import dataclasses

import pytest
import torch
from trials import differs, gen

from degen.model import Ensemble, ModelConfig
from degen.tasks import TASKS, make_task, masked_mse

# A value, other than the default, for every field that shapes the trials
# (all but the threshold) of every task.
CHANGES = {
    "flipflop": {
        "n_bits": 2,
        "n_steps": 30,
        "p_switch": 0.2,
        "first_pulse": False,
        "input_noise": 0.1,
    },
    "sine": {
        "n_channels": 3,
        "n_freqs": 7,
        "freq_min": 2.0,
        "freq_max": 20.0,
        "freq_sets": "interleaved",
        "dt": 0.002,
        "n_steps": 100,
        "transient_steps": 0,
        "input_noise": 0.1,
    },
    "delayed": {
        "n_channels": 3,
        "f_min": 1.0,
        "f_max": 12.0,
        "delay_min": 3,
        "delay_max": 25,
        "pulse_steps": 2,
        "response_steps": 3,
        "aux_output": True,
        "input_noise": 0.1,
    },
    "path": {
        "n_dims": 3,
        "n_steps": 30,
        "max_speed": 0.2,
        "turn_sd": 0.1,
        "half_width": 2.0,
        "input_noise": 0.1,
    },
}
FIELD_CHANGES = [
    (task, field, value)
    for task, changes in CHANGES.items()
    for field, value in sorted(changes.items())
]


def test_every_registered_task_is_covered():
    assert set(CHANGES) == set(TASKS)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_trial_field_is_in_the_change_table(task):
    config_cls, _ = TASKS[task]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    assert set(CHANGES[task]) == fields - {"threshold"}


@pytest.mark.parametrize("task, field, value", FIELD_CHANGES)
def test_every_field_changes_the_trials(task, field, value):
    base = make_task(task).sample(8, gen())
    other = make_task(task, {field: value}).sample(8, gen())
    assert differs(base, other)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_threshold_is_the_configured_one_and_leaves_the_trials_alone(task):
    strict = make_task(task, {"threshold": 0.2})
    assert strict.threshold == 0.2
    assert not differs(make_task(task).sample(8, gen()), strict.sample(8, gen()))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_same_trials_and_other_seed_differs(task):
    sampler = make_task(task, {"input_noise": 0.1})
    a, b, c = (sampler.sample(8, gen(s)) for s in (1, 1, 2))
    assert not differs(a, b)
    assert differs(a, c) and not torch.equal(a.targets, c.targets)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_batches_have_the_declared_shapes(task):
    sampler = make_task(task)
    batch = sampler.sample(5, gen())
    n_steps = batch.inputs.shape[1]
    assert batch.inputs.shape == (5, n_steps, sampler.n_inputs)
    assert batch.targets.shape == (5, n_steps, sampler.n_outputs)
    assert batch.mask.shape == batch.targets.shape
    assert batch.mask.sum() > 0
    for tensor in (batch.inputs, batch.targets, batch.mask):
        assert tensor.dtype == torch.float32 and torch.isfinite(tensor).all()


@pytest.mark.parametrize(
    "task, values",
    [(t, {}) for t in sorted(TASKS)]
    + [
        ("delayed", {"aux_output": True}),
        ("path", {"n_dims": 3}),
    ],
)
def test_trials_run_through_an_ensemble(task, values):
    sampler = make_task(task, values)
    batch = sampler.sample(4, gen())
    model = Ensemble(ModelConfig(8), sampler.n_inputs, sampler.n_outputs, [0, 1])
    outputs, _ = model.run(batch.inputs)
    assert outputs.shape == (2, *batch.targets.shape)
    loss = masked_mse(outputs, batch.targets, batch.mask)
    assert loss.shape == (2,) and torch.isfinite(loss).all()

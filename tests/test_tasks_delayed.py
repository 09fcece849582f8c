import dataclasses

import pytest
import torch
from trials import gen

from degen.config import ConfigError
from degen.tasks import DelayedConfig, make_task, task_config


def pulses(trace):
    """(start, length, height) of each run of non-zero input in one channel."""
    runs, t = [], 0
    while t < len(trace):
        if trace[t] != 0:
            start = t
            while t < len(trace) and trace[t] == trace[start]:
                t += 1
            runs.append((start, t - start, float(trace[start])))
        else:
            t += 1
    return runs


def reference(inputs_bxtxc, config):
    """Slow, obvious targets and mask, read off the drawn input pulses."""
    b, n_t, n_ch = inputs_bxtxc.shape
    targets = torch.zeros(b, n_t, 2 * n_ch)
    mask = torch.zeros(b, n_t, 2 * n_ch)
    delays = []
    for i in range(b):
        for ch in range(n_ch):
            (s1, w1, h1), (s2, w2, h2) = pulses(inputs_bxtxc[i, :, ch].tolist())
            assert s1 == 0 and w1 == w2 == config.pulse_steps
            delays.append(s2 - w1)
            f1, f2 = h1 * config.f_max, h2 * config.f_max
            for t in range(s2 + w2, s2 + w2 + config.response_steps):
                targets[i, t, ch] = 1.0 if f2 > f1 else -1.0
                targets[i, t, n_ch + ch] = abs(f2 - f1) / (config.f_max - config.f_min)
                mask[i, t, ch] = mask[i, t, n_ch + ch] = 1.0
    return targets, mask, delays


@pytest.mark.parametrize("pulse_steps", [1, 3])
def test_delayed_targets_are_the_sign_in_the_response_window_only(pulse_steps):
    values = {"n_channels": 3, "pulse_steps": pulse_steps, "aux_output": True}
    task = make_task("delayed", values)
    batch = task.sample(16, gen(5))
    c = task.config
    assert batch.inputs.shape == (16, 2 * pulse_steps + 20 + 5, 3)
    assert task.n_outputs == batch.targets.shape[-1] == 6
    targets, mask, delays = reference(batch.inputs, c)
    assert torch.equal(batch.targets[..., :3], targets[..., :3])
    torch.testing.assert_close(batch.targets[..., 3:], targets[..., 3:])
    assert torch.equal(batch.mask, mask)
    assert set(batch.targets[..., :3].unique().tolist()) == {-1.0, 0.0, 1.0}
    assert min(delays) >= 5 and max(delays) <= 20
    heights = batch.inputs[batch.inputs != 0] * c.f_max
    assert heights.min() >= 2.0 and heights.max() <= 10.0


def test_delayed_without_aux_has_only_the_decision_outputs():
    with_aux = make_task("delayed", {"aux_output": True}).sample(8, gen())
    task = make_task("delayed")
    plain = task.sample(8, gen())
    assert task.n_outputs == plain.targets.shape[-1] == 2
    assert torch.equal(plain.targets, with_aux.targets[..., :2])
    assert torch.equal(plain.inputs, with_aux.inputs)


def test_delayed_delays_cover_the_range():
    task = make_task("delayed", {"n_channels": 4, "delay_min": 3, "delay_max": 6})
    _, _, delays = reference(task.sample(32, gen()).inputs, task.config)
    assert set(delays) == {3, 4, 5, 6}


def test_delayed_ood_doubles_the_delay_and_keeps_every_pulse():
    values = {"delay_min": 4, "delay_max": 9, "pulse_steps": 2, "response_steps": 3}
    task = make_task("delayed", values)
    ood = task.ood()
    assert (ood.config.delay_min, ood.config.delay_max) == (8, 18)
    assert dataclasses.replace(ood.config, delay_min=4, delay_max=9) == task.config
    assert ood.config.n_steps - task.config.n_steps == 9
    batch = ood.sample(16, gen())
    assert batch.inputs.shape == (16, 2 * 2 + 18 + 3, 2)
    targets, mask, delays = reference(batch.inputs, ood.config)  # two 2-step pulses
    assert torch.equal(batch.targets, targets[..., :2])
    assert torch.equal(batch.mask, mask[..., :2])
    assert min(delays) >= 8 and max(delays) <= 18


@pytest.mark.parametrize(
    "values, words",
    [
        ({"n_channels": 0}, ["n_channels", "0", "[1, 64]"]),
        ({"f_min": 0.0}, ["f_min", "0.0", "(0.0"]),
        ({"f_min": 10.0, "f_max": 2.0}, ["f_max", "2.0", "(10.0, inf]"]),
        ({"f_max": 2.0}, ["f_max", "2.0", "(2.0, inf]"]),
        ({"delay_min": 0}, ["delay_min", "0", "[1, 100000]"]),
        ({"delay_min": 21}, ["delay_max", "20", "[21, 100000]"]),
        ({"delay_max": 4}, ["delay_max", "4", "[5, 100000]"]),
        ({"pulse_steps": 0}, ["pulse_steps", "0", "[1, 1000]"]),
        ({"response_steps": 0}, ["response_steps", "0", "[1"]),
        ({"input_noise": -0.1}, ["input_noise", "-0.1", "[0.0"]),
        ({"threshold": -0.01}, ["threshold", "-0.01", "(0.0"]),
        ({"threshold": 0}, ["threshold", "0", "(0.0"]),
        ({"aux_output": "yes"}, ["aux_output", "'yes'", "bool"]),
        ({"delay": 5}, ["delay", "valid keys", "delay_min"]),
    ],
)
def test_bad_delayed_values_name_the_field_and_the_range(values, words):
    with pytest.raises(ConfigError) as err:
        task_config("delayed", values)
    for word in words:
        assert word in str(err.value)


def test_delayed_defaults_match_the_paper():
    config = DelayedConfig()
    assert config.threshold == 0.01
    assert (config.f_min, config.f_max) == (2.0, 10.0)
    assert (config.delay_min, config.delay_max) == (5, 20)

import dataclasses

import numpy as np
import pytest
import torch
from trials import gen

from degen.config import ConfigError
from degen.tasks import SineConfig, make_task, task_config


@pytest.mark.parametrize(
    "values",
    [
        {"n_channels": 3, "n_freqs": 30},  # shared: 1, 2, ..., 30 Hz
        {"n_channels": 2, "n_freqs": 15, "freq_sets": "interleaved"},
    ],
)
def test_sine_spectrum_peaks_at_the_selected_frequency(values):
    # 1000 steps of 5 ms = 5 s: FFT bins every 0.2 Hz, so every integer
    # frequency falls exactly on a bin.
    task = make_task("sine", {**values, "n_steps": 1000, "transient_steps": 0})
    batch = task.sample(8, gen())
    freq = batch.inputs[:, 0].double().numpy() * task.config.freq_max  # [batch, N]
    spectrum = np.abs(np.fft.rfft(batch.targets.double().numpy(), axis=1))
    bins = np.fft.rfftfreq(1000, d=task.config.dt)
    peak = bins[spectrum.argmax(axis=1)]  # [batch, N]
    np.testing.assert_allclose(peak, freq, atol=1e-6)
    # The input is static over the trial.
    assert torch.equal(batch.inputs, batch.inputs[:, :1].expand_as(batch.inputs))


def test_sine_target_is_the_sine_of_the_selected_frequency():
    task = make_task("sine", {"n_channels": 2, "n_freqs": 5})
    batch = task.sample(6, gen(4))
    freq = batch.inputs[:, 0].double() * 30.0  # [batch, N]
    t = torch.arange(200, dtype=torch.float64) * 0.005
    expected = torch.sin(2 * torch.pi * freq[:, None, :] * t[None, :, None])
    torch.testing.assert_close(batch.targets.double(), expected, atol=1e-5, rtol=0)
    allowed = torch.linspace(1, 30, 5, dtype=torch.float64)
    assert torch.isclose(freq[..., None], allowed, atol=1e-4).any(-1).all()


def test_sine_frequency_sets_shared_and_interleaved():
    shared = make_task("sine", {"n_channels": 3, "n_freqs": 4}).frequencies()
    assert torch.equal(shared[0], shared[2])
    torch.testing.assert_close(shared[0], torch.linspace(1, 30, 4).double())
    task = make_task(
        "sine", {"n_channels": 3, "n_freqs": 4, "freq_sets": "interleaved"}
    )
    table = task.frequencies()
    grid = torch.linspace(1, 30, 12, dtype=torch.float64)
    torch.testing.assert_close(table.flatten().sort().values, grid)  # disjoint
    torch.testing.assert_close(table[1], grid[1::3])
    # Every channel draws from its own set.
    batch = task.sample(64, gen())
    freq = batch.inputs[:, 0].double() * 30.0
    for ch in range(3):
        assert torch.isclose(freq[:, ch, None], table[ch], atol=1e-4).any(-1).all()


def test_sine_mask_skips_the_transient():
    batch = make_task("sine", {"transient_steps": 7}).sample(3, gen())
    assert (batch.mask[:, :7] == 0).all() and (batch.mask[:, 7:] == 1).all()


def test_sine_ood_is_twice_as_long_and_keeps_every_setting():
    task = make_task("sine", {"n_channels": 2, "n_freqs": 6, "n_steps": 80})
    ood = task.ood()
    assert ood.config.n_steps == 160
    assert dataclasses.replace(ood.config, n_steps=80) == task.config
    a, b = task.sample(5, gen(3)), ood.sample(5, gen(3))
    assert b.targets.shape == (5, 160, 2)
    # Same draws: the long trial continues the short one.
    assert torch.equal(b.targets[:, :80], a.targets)
    assert torch.equal(b.inputs[:, :80], a.inputs)


@pytest.mark.parametrize(
    "values, words",
    [
        ({"n_channels": 0}, ["n_channels", "0", "[1, 64]"]),
        ({"n_freqs": 0}, ["n_freqs", "0", "[1"]),
        ({"freq_min": 0.0}, ["freq_min", "0.0", "(0.0"]),
        ({"freq_min": 10.0, "freq_max": 5.0}, ["freq_max", "5.0", "(10.0, inf]"]),
        ({"freq_sets": "random"}, ["freq_sets", "'random'", "shared"]),
        ({"dt": 0.02}, ["dt", "0.02", "(0.0, 0.01666"]),
        ({"dt": 0.0}, ["dt", "0.0", "(0.0"]),
        ({"n_steps": 1}, ["n_steps", "1", "[2"]),
        ({"transient_steps": 200}, ["transient_steps", "200", "[0, 199]"]),
        ({"input_noise": -0.1}, ["input_noise", "-0.1", "[0.0"]),
        ({"threshold": 0}, ["threshold", "0", "(0.0"]),
        ({"n_chanels": 2}, ["n_chanels", "valid keys", "n_channels"]),
        ({"n_freqs": 2.5}, ["n_freqs", "2.5", "int"]),
    ],
)
def test_bad_sine_values_name_the_field_and_the_range(values, words):
    with pytest.raises(ConfigError) as err:
        task_config("sine", values)
    for word in words:
        assert word in str(err.value)


def test_sine_defaults_match_the_paper():
    config = SineConfig()
    assert config.threshold == 0.05
    assert (config.freq_min, config.freq_max) == (1.0, 30.0)


@pytest.mark.slow
def test_a_trained_network_oscillates_at_the_requested_frequency():
    # The default profile's sine settings (0.5 s trials of 10 ms steps), one
    # channel choosing among 1, 10.7, 20.3 and 30 Hz.
    from degen import analysis
    from degen.model import Ensemble, ModelConfig
    from degen.train import TrainConfig, train_ensemble

    values = {"n_channels": 1, "n_steps": 50, "dt": 0.01, "threshold": 0.05}
    task = make_task("sine", values)
    model = Ensemble(ModelConfig(64), task.n_inputs, task.n_outputs, [0, 1])
    config = TrainConfig(
        lr=3e-3, batch_size=64, steps_per_epoch=128, max_epochs=20, patience=0
    )
    result = train_ensemble(model, task, config)
    assert result.converged.all(), result.epoch_loss
    batch = task.sample(32, gen(9))
    outputs, _ = model.run(batch.inputs)
    start = task.config.transient_steps
    peak = analysis.peak_frequency(outputs[:, :, start:, 0].numpy(), task.config.dt)
    wanted = (batch.inputs[:, 0, 0] * task.config.freq_max).double().numpy()
    # Two full cycles in the scored window are needed to resolve a peak.
    window_s = (task.config.n_steps - start) * task.config.dt
    resolvable = wanted * window_s >= 2
    assert resolvable.sum() >= 16 and (~resolvable).any()
    # The output's spectrum peaks at the requested frequency (within the
    # 1 Hz that zero-padding gives), for every trial and both networks.
    np.testing.assert_allclose(
        peak[:, resolvable],
        np.broadcast_to(wanted[resolvable], peak[:, resolvable].shape),
        atol=1.0,
    )

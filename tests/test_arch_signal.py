"""Architecture-gradient signal: per-row SNR of the leading options' difference, steps to decide."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from segnas.strategies.arch_signal import ArchSignal, signal_line, steps_to_resolve


def _feed(signal, params, grads):
    for g in grads:
        for p, gp in zip(params, g):
            p.grad = torch.as_tensor(gp, dtype=torch.float32).clone()
        signal.update(params)


def test_snr_matches_a_hand_computation():
    """The pair is the current leader and runner-up logit; SNR^2 is debiased by 1/n."""
    rng = np.random.default_rng(0)
    alpha = nn.Parameter(torch.tensor([[0.3, 0.1, 0.0], [0.0, 0.2, 0.1]]))
    beta = nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.2], [0.2, 0.5]]))
    mu_a = np.array([[-0.6, 0.1, 0.2], [0.05, -1.0, -0.03]])
    grads = [(mu_a + rng.normal(0, 1, (2, 3)), rng.normal(0, 1, (4, 2))) for _ in range(50)]
    signal = ArchSignal([alpha, beta])
    _feed(signal, [alpha, beta], grads)
    ga = np.stack([x[0] for x in grads]).astype(np.float32).astype(np.float64)
    gb = np.stack([x[1] for x in grads]).astype(np.float32).astype(np.float64)
    diffs = [ga[:, 0, 0] - ga[:, 0, 1], ga[:, 1, 1] - ga[:, 1, 2],
             gb[:, 0, 0] - gb[:, 0, 1], gb[:, 1, 1] - gb[:, 1, 0], gb[:, 2, 0] - gb[:, 2, 1], gb[:, 3, 1] - gb[:, 3, 0]]
    expected = [math.sqrt(max(0.0, (d.mean() / d.std(ddof=1)) ** 2 - 1 / 50)) for d in diffs]
    assert signal.row_snr([alpha, beta]) == pytest.approx(expected, rel=1e-9)
    assert expected[0] > 0.2 and expected[1] > 0.2  # the planted drifts are seen
    s = signal.summary([alpha, beta], planned_steps=100)
    assert s["rows"] == 6 and s["steps"] == 50 and s["snr_floor"] == pytest.approx(50 ** -0.5)
    assert s["median_snr"] == pytest.approx(float(np.median(expected)))
    need = [steps_to_resolve(x) for x in expected]
    assert s["rows_resolved"] == pytest.approx(sum(n <= 100 for n in need) / 6)


def test_a_constant_gradient_is_decided_at_once_and_pure_noise_is_not():
    p = nn.Parameter(torch.zeros(3, 4))
    signal = ArchSignal([p])
    _feed(signal, [p], [(np.tile([-1.0, 0.5, 0.2, 0.3], (3, 1)),)] * 5)
    s = signal.summary([p], planned_steps=10)
    assert s["median_snr"] is None and s["median_steps_to_resolve"] == 1 and s["rows_resolved"] == 1.0  # exact
    noise = ArchSignal([p])
    rng = np.random.default_rng(1)
    _feed(noise, [p], [(rng.normal(0, 1, (3, 4)),) for _ in range(400)])
    s = noise.summary([p], planned_steps=400)
    assert s["median_snr"] < s["snr_floor"] and s["rows_resolved"] < 1.0
    assert s["median_steps_to_resolve"] is None or s["median_steps_to_resolve"] > 400
    assert "SNR exact" in signal_line(signal.summary([p], 10))
    zero_mean = ArchSignal([p])  # +g, -g, ...: the mean gradient is exactly zero, so no drift at all
    g = rng.normal(0, 1, (3, 4))
    _feed(zero_mean, [p], [(g,), (-g,)] * 4)
    s = zero_mean.summary([p], planned_steps=400)
    assert s["median_snr"] == 0.0 and s["median_steps_to_resolve"] is None and s["rows_resolved"] == 0.0
    assert "no drift measurable in 8 steps" in signal_line(s) and "never" not in signal_line(s)


def test_options_and_rows_without_any_gradient_are_left_out():
    """Masked moves never get a gradient: the pair is the leading two live options, dead rows are skipped."""
    p = nn.Parameter(torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 0.0], [1.0, 0.5, 0.0]]))
    signal = ArchSignal([p])
    rng = np.random.default_rng(3)
    grads = [(np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.5, -1.0]]) + rng.normal(0, 0.1, (3, 3)) *
              np.array([[1, 1, 0], [0, 0, 0], [1, 1, 1]]),) for _ in range(20)]
    _feed(signal, [p], grads)
    g = np.stack([x[0] for x in grads]).astype(np.float32).astype(np.float64)
    d0, d2 = g[:, 0, 0] - g[:, 0, 1], g[:, 2, 0] - g[:, 2, 1]
    expected = [math.sqrt(max(0.0, (d.mean() / d.std(ddof=1)) ** 2 - 1 / 20)) for d in (d0, d2)]
    assert signal.row_snr([p]) == pytest.approx(expected, rel=1e-9)


def test_steps_to_resolve():
    assert steps_to_resolve(0.1) == 400 and steps_to_resolve(2.0) == 1 and steps_to_resolve(0.0) == math.inf


def test_state_round_trip_continues_like_one_run():
    p = nn.Parameter(torch.zeros(2, 5))
    rng = np.random.default_rng(2)
    grads = [(rng.normal(0.1, 1, (2, 5)),) for _ in range(20)]
    whole = ArchSignal([p])
    _feed(whole, [p], grads)
    first = ArchSignal([p])
    _feed(first, [p], grads[:8])
    second = ArchSignal([p])
    second.load_state_dict(first.state_dict())
    _feed(second, [p], grads[8:])
    assert second.summary([p], 20) == whole.summary([p], 20)
    second.reset()
    assert second.summary([p], 20) == {"steps": 0, "rows": 0}

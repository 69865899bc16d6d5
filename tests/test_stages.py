"""The progressive-stage rule (continue to stage 2 or stop) and the search reward."""

import math

import numpy as np
import pytest

from segnas.strategies.stages import EarlyTermination, reward


def test_rule_on_hand_set_rewards():
    rule = EarlyTermination(p_start=0.9, decay=0.5, p_min=0.2)
    rng = np.random.default_rng(1)
    draws = np.random.default_rng(1).random(5)  # one draw per decision, whatever the outcome
    rewards = [0.5, 0.6, 0.4, 0.3, 0.9]
    out = [rule.decide(r, rng) for r in rewards]
    assert [d.reason for d in out[:2]] == ["first", "above-mean"]
    assert out[0].mean is None and out[1].mean == pytest.approx(0.5)
    assert out[2].mean == pytest.approx(0.55) and out[3].mean == pytest.approx(0.5)
    assert [d.p for d in out] == pytest.approx([0.9, 0.45, 0.225, 0.2, 0.2])  # annealed, floored
    for d, u in zip(out[2:4], draws[2:4]):  # below the mean: continue iff the draw is under p
        assert d.proceed == (u < d.p)
        assert d.reason == ("kept-by-chance" if d.proceed else "stopped")
    assert [d.proceed for d in out[2:4]] == [True, False]  # this seed: one kept by chance, one stopped
    assert out[4].reason == "above-mean" and out[4].proceed
    assert rule.mean == pytest.approx(np.mean(rewards)) and rule.count == 5


def test_moving_average_mean_and_default_schedule():
    rule = EarlyTermination(mean_decay=0.5)
    rng = np.random.default_rng(0)
    for r in (0.2, 0.6, 0.4):
        rule.decide(r, rng)
    assert rule.mean == pytest.approx(0.5 * (0.5 * 0.2 + 0.5 * 0.6) + 0.5 * 0.4)
    default = EarlyTermination()
    default.count = 100
    assert default.p == pytest.approx(0.9 * 0.997**100)
    default.count = 10_000
    assert default.p == 0.25


def test_equal_to_mean_does_not_beat_it_and_p_zero_stops():
    rule = EarlyTermination(p_start=0.0, decay=1.0, p_min=0.0)
    rng = np.random.default_rng(1)
    assert rule.decide(0.5, rng).proceed
    d = rule.decide(0.5, rng)
    assert not d.proceed and d.reason == "stopped"


@pytest.mark.parametrize("mean_decay", [None, 0.9])
def test_rule_is_deterministic_and_resumes(mean_decay):
    rewards = np.random.default_rng(7).random(30)
    full_rule, rng = EarlyTermination(decay=0.9, mean_decay=mean_decay), np.random.default_rng(3)
    full = [full_rule.decide(r, rng).proceed for r in rewards]

    rule, rng = EarlyTermination(decay=0.9, mean_decay=mean_decay), np.random.default_rng(3)
    first = [rule.decide(r, rng).proceed for r in rewards[:12]]
    state, rng_state = rule.state_dict(), rng.bit_generator.state
    resumed_rule, rng2 = EarlyTermination(decay=0.9, mean_decay=mean_decay), np.random.default_rng()
    resumed_rule.load_state_dict(state)
    rng2.bit_generator.state = rng_state
    rest = [resumed_rule.decide(r, rng2).proceed for r in rewards[12:]]
    assert first + rest == full
    assert resumed_rule.state_dict() == full_rule.state_dict()
    assert not all(full)  # some trials stop
    with pytest.raises(ValueError, match="finite"):
        rule.decide(float("nan"), rng)


def test_reward_against_hand_computed_matrix_with_background_excluded():
    # rows truth, columns prediction; class 0 is background
    cm = np.array([[50, 2, 3],
                   [4, 6, 0],
                   [1, 0, 4]])
    # without background: class 1 IoU 6/(10+8-6) = 1/2, class 2 IoU 4/(5+7-4) = 1/2
    miou = (0.5 + 0.5) / 2
    fwiou = (10 / 15) * 0.5 + (5 / 15) * 0.5  # weighted by ground-truth pixels of the kept classes
    mean_acc = (6 / 10 + 4 / 5) / 2
    assert reward(cm, ignore_background=0) == pytest.approx((miou * fwiou * mean_acc) ** (1 / 3))
    # with background: class 0 IoU 50/(55+55-50) = 5/6, accuracy 50/55
    iou = [5 / 6, 0.5, 0.5]
    gt = [55, 10, 5]
    full = (np.mean(iou) * np.dot(gt, iou) / 70 * np.mean([50 / 55, 0.6, 0.8])) ** (1 / 3)
    assert reward(cm, ignore_background=None) == pytest.approx(full)
    assert not math.isclose(reward(cm, 0), reward(cm, None))


def test_undefined_reward_raises_instead_of_zero():
    only_background = np.array([[9, 0], [0, 0]])
    with pytest.raises(ValueError, match="undefined"):
        reward(only_background, ignore_background=0)
    with pytest.raises(ValueError, match="square"):
        reward(np.zeros((2, 3)), None)

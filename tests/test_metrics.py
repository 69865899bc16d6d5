import math

import numpy as np
import pytest
import torch

from segnas.metrics import ConfusionMatrix, metrics_from_confusion, nekrasov_reward


def test_confusion_from_predictions_matches_hand_count():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(pred, target)
    # rows = truth, cols = prediction; the ignored pixel is absent
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]


def test_metrics_against_hand_computed_values():
    cm = np.array([[1, 1, 0], [0, 3, 0], [1, 0, 1]])
    m = metrics_from_confusion(cm)
    # IoU: c0 = 1/(2+2-1)=1/3, c1 = 3/(3+4-3)=3/4, c2 = 1/(2+1-1)=1/2
    assert m["iou"] == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert m["miou"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert m["pixel_acc"] == pytest.approx(5 / 7)
    assert m["mean_acc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["fwiou"] == pytest.approx(2 / 7 * 1 / 3 + 3 / 7 * 3 / 4 + 2 / 7 * 1 / 2)


def test_absent_class_is_excluded_and_missed_class_counts_zero():
    cm = np.array([[2, 0, 0], [0, 0, 0], [1, 0, 0]])  # class 1 absent everywhere, class 2 never right
    m = metrics_from_confusion(cm)
    assert m["iou"][1] is None
    assert m["iou"][2] == 0.0
    assert m["miou"] == pytest.approx((2 / 3 + 0) / 2)


def test_logits_input_and_out_of_range_target():
    cm = ConfusionMatrix(2)
    logits = torch.tensor([[[[2.0, -1.0]], [[0.0, 3.0]]]])  # 1x2x1x2 -> argmax [0, 1]
    cm.update(logits, torch.tensor([[[0, 0]]]))
    assert cm.matrix.tolist() == [[1, 1], [0, 0]]
    with pytest.raises(ValueError, match="outside"):
        cm.update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 5]]))
    with pytest.raises(ValueError, match="prediction"):
        cm.update(torch.tensor([[3, 4]]), torch.tensor([[0, 0]]))


def test_nekrasov_reward_is_geometric_mean_and_can_exclude_a_class():
    cm = np.array([[5, 1, 0], [1, 3, 0], [0, 1, 2]])
    m = metrics_from_confusion(cm)
    expected = (m["miou"] * m["fwiou"] * m["mean_acc"]) ** (1 / 3)
    assert nekrasov_reward(cm) == pytest.approx(expected)
    ex = metrics_from_confusion(cm, exclude=0)
    assert ex["miou"] == pytest.approx(np.mean([m["iou"][1], m["iou"][2]]))
    assert nekrasov_reward(cm, exclude=0) == pytest.approx((ex["miou"] * ex["fwiou"] * ex["mean_acc"]) ** (1 / 3))
    assert not math.isclose(nekrasov_reward(cm, exclude=0), nekrasov_reward(cm))

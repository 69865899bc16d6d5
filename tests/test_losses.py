import torch
import torch.nn.functional as F

from segnas.losses import OhemCrossEntropy, kl_distillation, l2_distillation, seg_loss_with_aux, CrossEntropy


def test_ohem_averages_only_hard_pixels_but_at_least_min_kept():
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 0, 0, :] = torch.tensor([5.0, 5.0, -5.0, 0.0])  # class-0 scores
    target = torch.tensor([[[0, 0, 0, 255]]])
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")[0, 0, :3]
    loose = OhemCrossEntropy(thresh=0.7, min_kept=1)(logits, target)
    assert torch.isclose(loose, per_pixel[2])  # the single hard pixel
    strict = OhemCrossEntropy(thresh=0.7, min_kept=3)(logits, target)
    assert torch.isclose(strict, per_pixel.mean())


def test_kl_distillation_is_zero_for_equal_logits_and_averages_over_pixels():
    s = torch.randn(2, 5, 3, 4)
    assert kl_distillation(s, s.clone()).abs() < 1e-6
    t = torch.randn(2, 5, 3, 4)
    p_t = F.softmax(t, 1)
    manual = (p_t * (F.log_softmax(t, 1) - F.log_softmax(s, 1))).sum(1).mean()
    assert torch.isclose(kl_distillation(s, t), manual, atol=1e-6)


def test_distillation_gradient_reaches_student_only():
    s = torch.randn(1, 3, 2, 2, requires_grad=True)
    t = torch.randn(1, 3, 2, 2, requires_grad=True)
    (kl_distillation(s, t) + l2_distillation(s, t)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_aux_losses_are_weighted():
    ce = CrossEntropy()
    main, aux = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2)
    target = torch.randint(0, 3, (1, 2, 2))
    total = seg_loss_with_aux(ce, main, [aux], target, 0.2)
    assert torch.isclose(total, ce(main, target) + 0.2 * ce(aux, target))

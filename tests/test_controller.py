"""The LSTM controller over any space's decisions and its PPO update."""

import copy

import pytest
import torch

from segnas.spaces.base import Decision
from segnas.strategies.controller import Controller
from segnas.strategies.ppo import PPO, Experience

# connection choices whose pool grows (4, 4, 5, 5), and operation choices sharing one group
DECISIONS = [Decision("c1", 4), Decision("c2", 4), Decision("op1", 11, group="op"), Decision("c3", 5),
             Decision("c4", 5), Decision("op2", 11, group="op"), Decision("i1", 2), Decision("op3", 11, group="op")]


def make(seed=0, **kw):
    return Controller(DECISIONS, generator=torch.Generator().manual_seed(seed), **kw)


def test_heads_are_shared_per_group_and_per_size():
    c = make(hidden_size=16)
    assert c.decision_heads() == ["size:4", "size:4", "group:op", "size:5", "size:5", "group:op", "size:2",
                                  "group:op"]
    assert c.head_keys == ["size:4", "group:op", "size:5", "size:2"]
    assert [h.out_features for h in c.heads] == [4, 11, 5, 2]
    assert [e.num_embeddings for e in c.embeddings] == [4, 11, 5, 2]
    sep = make(hidden_size=16, separate_heads=True)
    assert sep.decision_heads()[:3] == ["decision:c1", "decision:c2", "group:op"]
    assert [h.out_features for h in sep.heads] == [4, 4, 11, 5, 5, 2]
    with pytest.raises(ValueError, match="group"):
        Controller([Decision("a", 3, group="op"), Decision("b", 4, group="op")],
                   generator=torch.Generator().manual_seed(0))


def test_default_shape_and_uniform_init():
    c = make()
    assert c.lstm.hidden_size == 100 and c.lstm.num_layers == 2
    values = torch.cat([p.detach().flatten() for p in c.parameters()])
    assert values.abs().max() <= 0.1 and values.std() > 0.05  # U(-0.1, 0.1): std 0.0577
    assert all(torch.equal(a, b) for a, b in zip(c.parameters(), make().parameters()))


def test_construction_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make(hidden_size=8)
    assert torch.equal(torch.rand(3), expected)


def test_sampled_log_prob_equals_teacher_forced_and_batch():
    c = make(hidden_size=32)
    g = torch.Generator().manual_seed(5)
    rollouts = [c.sample(g) for _ in range(4)]
    for r in rollouts:
        assert len(r.actions) == len(DECISIONS)
        assert all(0 <= a < d.size for a, d in zip(r.actions, DECISIONS))
        assert torch.equal(c.log_prob(r.actions), r.log_prob)
        assert float(r.entropy) > 0
    batch = c.log_prob([r.actions for r in rollouts])
    assert torch.allclose(batch, torch.stack([r.log_prob for r in rollouts]), atol=1e-5)
    with pytest.raises(ValueError, match="c3"):
        c.log_prob([0, 0, 0, 7, 0, 0, 0, 0])


def test_seeded_sampling_is_reproducible():
    c = make(hidden_size=32)
    a = [c.sample(torch.Generator().manual_seed(9)).actions for _ in range(2)]
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert [c.sample(g1).actions for _ in range(5)] == [c.sample(g2).actions for _ in range(5)]
    assert a[0] == a[1]


def test_ppo_raises_the_probability_of_a_rewarded_architecture():
    c = make(hidden_size=32)
    ppo = PPO(c, epochs=4)
    g = torch.Generator().manual_seed(1)
    target = c.sample(g).actions
    before = float(c.log_prob(target).detach())
    for _ in range(5):
        others = [c.sample(g) for _ in range(3)]
        batch = [Experience(target, float(c.log_prob(target).detach()), 1.0)]
        batch += [Experience(r.actions, float(r.log_prob), 0.0) for r in others if r.actions != target]
        stats = ppo.update(batch)
        assert stats["updated"]
    after = float(c.log_prob(target).detach())
    assert after > before + 0.01, (before, after)


def test_failed_trials_are_excluded_not_zeros():
    c = make(hidden_size=16)
    ppo = PPO(c)
    g = torch.Generator().manual_seed(2)
    r = [c.sample(g) for _ in range(3)]
    state = copy.deepcopy(ppo.state_dict())
    stats = ppo.update([Experience(x.actions, float(x.log_prob), None) for x in r])
    assert stats == {"trials": 0, "failed": 3, "updated": False, "baseline": None}
    assert ppo.update([])["updated"] is False
    after = ppo.state_dict()
    assert all(torch.equal(after["controller"][k], v) for k, v in state["controller"].items())
    assert after["optimizer"]["state"] == {} and ppo.baseline is None and ppo.updates == 0
    # a None among rewards changes nothing compared with leaving that trial out
    a, b = make(hidden_size=16), make(hidden_size=16)
    pa, pb = PPO(a), PPO(b)
    good = [Experience(r[0].actions, float(r[0].log_prob), 0.7), Experience(r[1].actions, float(r[1].log_prob), 0.2)]
    pa.update(good + [Experience(r[2].actions, float(r[2].log_prob), None)])
    pb.update(good)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert pa.baseline == pb.baseline
    with pytest.raises(ValueError, match="None"):
        pa.update([Experience(r[0].actions, 0.0, float("nan"))])


def test_baseline_starts_at_first_mean_and_moves_with_decay():
    c = make(hidden_size=16)
    ppo = PPO(c, epochs=1)
    g = torch.Generator().manual_seed(3)
    r = [c.sample(g) for _ in range(2)]
    ppo.update([Experience(r[0].actions, float(r[0].log_prob), 0.4),
                Experience(r[1].actions, float(r[1].log_prob), 0.6)])
    b = 0.5
    for x in (0.4, 0.6):
        b = 0.95 * b + 0.05 * x
    assert ppo.baseline == pytest.approx(b)


def test_ppo_resume_is_bitwise_identical():
    def batch(c, g, n=3):
        rs = [c.sample(g) for _ in range(n)]
        return [Experience(r.actions, float(r.log_prob), 0.1 * (i + 1)) for i, r in enumerate(rs)]

    c = make(hidden_size=24)
    ppo = PPO(c, epochs=3)
    g = torch.Generator().manual_seed(4)
    ppo.update(batch(c, g))
    saved, g_state = copy.deepcopy(ppo.state_dict()), g.get_state()
    ppo.update(batch(c, g))
    continuous = ppo.state_dict()

    fresh = PPO(make(seed=99, hidden_size=24), epochs=3)  # other init: everything must come from the state
    fresh.load_state_dict(saved)
    g2 = torch.Generator()
    g2.set_state(g_state)
    fresh.update(batch(fresh.controller, g2))
    resumed = fresh.state_dict()
    assert resumed["baseline"] == continuous["baseline"] and resumed["updates"] == continuous["updates"] == 2
    assert all(torch.equal(continuous["controller"][k], v) for k, v in resumed["controller"].items())
    for k, st in continuous["optimizer"]["state"].items():
        assert all(torch.equal(st[n], resumed["optimizer"]["state"][k][n]) for n in st)

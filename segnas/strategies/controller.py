"""An LSTM controller that emits any space's flat integer choices, one decision at a time.

It knows a space only through ``choice_spec``'s ``Decision`` list (Nekrasov
et al.: a 2-layer LSTM with 100 hidden units, every parameter drawn from
U(-0.1, 0.1)). Each step reads the previous action, runs the LSTM one step
and draws the decision from a linear head:

- decisions that share a non-empty ``group`` share one head (a space's
  operator choices: the paper's single 11-way operation head);
- every other decision uses the head of its size, so decisions whose number
  of options differs (connection choices, whose pool grows) get separate
  heads, as in the paper, and decisions of equal size without a group share
  one; ``separate_heads=True`` gives each of them its own head instead (the
  authors' released code has one per connection and cell-index decision).

Each head has its own embedding table of its actions: the embedding of the
action just taken is the next step's input (a learned start vector feeds the
first step). The controller samples every decision; ``decode`` may still
refuse a draw (a constraint the sizes do not express). The caller then
resamples, and only decodable draws enter the PPO batch, so the policy that
is trained is the controller's distribution restricted to valid choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..genotype import Decision


@dataclass(frozen=True)
class Rollout:
    """One sampled architecture: its actions, their summed log-probability and summed step entropy (detached)."""

    actions: list[int]
    log_prob: torch.Tensor
    entropy: torch.Tensor


def head_key(decision: Decision, separate: bool = False) -> str:
    """The head a decision is drawn from: ``group:<name>`` if grouped, else ``size:<n>`` (``separate``: its name)."""
    if decision.group:
        return f"group:{decision.group}"
    return f"decision:{decision.name}" if separate else f"size:{decision.size}"


class Controller(nn.Module):
    """Autoregressive policy over ``decisions``; ``sample`` draws, ``log_prob`` scores (differentiably)."""

    def __init__(self, decisions: Sequence[Decision], *, generator: torch.Generator, hidden_size: int = 100,
                 num_layers: int = 2, init_range: float = 0.1, separate_heads: bool = False) -> None:
        super().__init__()
        if not decisions:
            raise ValueError("the controller needs at least one decision")
        self.decisions = list(decisions)
        self.hidden_size = hidden_size
        keys: list[str] = []
        sizes: dict[str, int] = {}
        for d in self.decisions:
            if d.size < 1:
                raise ValueError(f"decision {d.name} has size {d.size}; it must be at least 1")
            key = head_key(d, separate_heads)
            if key.startswith("decision:") and key in sizes:
                raise ValueError(f"two decisions are named {d.name}; separate heads need distinct names")
            if sizes.setdefault(key, d.size) != d.size:
                raise ValueError(f"decision {d.name} has size {d.size} but its group {d.group!r} has size "
                                 f"{sizes[key]}; decisions of one group pick from one list")
            keys.append(key)
        self.head_keys: list[str] = list(sizes)  # one per head, in order of first use
        self._head_of = [self.head_keys.index(k) for k in keys]  # head index per decision
        # built under a forked global RNG: the modules' own default init must not move anyone's draws
        with torch.random.fork_rng(devices=[]):
            self.start = nn.Parameter(torch.empty(1, hidden_size))
            self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers=num_layers)
            self.heads = nn.ModuleList(nn.Linear(hidden_size, sizes[k]) for k in self.head_keys)
            self.embeddings = nn.ModuleList(nn.Embedding(sizes[k], hidden_size) for k in self.head_keys)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-init_range, init_range, generator=generator)

    def decision_heads(self) -> list[str]:
        """The head key of every decision, in order (which decisions share parameters)."""
        return [self.head_keys[h] for h in self._head_of]

    @torch.no_grad()
    def sample(self, generator: torch.Generator) -> Rollout:
        """Draw one full sequence of actions from ``generator`` (no gradient: PPO re-scores with ``log_prob``)."""
        actions, log_prob, entropy = self._unroll(None, 1, generator)
        return Rollout([int(a) for a in actions[0]], log_prob[0], entropy[0])

    def log_prob(self, actions: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor) -> torch.Tensor:
        """Teacher-forced summed log-probability: a scalar for one sequence, a vector for a batch of them."""
        return self.evaluate(actions)[0]

    def evaluate(self, actions: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_prob, entropy)`` of given actions, summed over decisions; batched like ``log_prob``."""
        batch = torch.as_tensor(actions, dtype=torch.long, device=self.start.device)
        single = batch.dim() == 1
        if single:
            batch = batch.unsqueeze(0)
        n = len(self.decisions)
        if batch.dim() != 2 or batch.shape[1] != n:
            raise ValueError(f"actions must hold {n} integers per sequence (one per decision); got shape "
                             f"{tuple(batch.shape)}")
        for t, d in enumerate(self.decisions):
            col = batch[:, t]
            if bool(((col < 0) | (col >= d.size)).any()):
                raise ValueError(f"action {t} ({d.name}) must be in 0..{d.size - 1}; got {col.tolist()}")
        _, log_prob, entropy = self._unroll(batch, batch.shape[0], None)
        return (log_prob[0], entropy[0]) if single else (log_prob, entropy)

    def _unroll(self, actions: torch.Tensor | None, batch: int, generator: torch.Generator | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One LSTM step per decision; draws actions when ``actions`` is None, else reads them (teacher forcing).

        Sampling and scoring share this loop, so a rollout's log-probability
        equals ``log_prob`` of its actions exactly.
        """
        x = self.start.expand(batch, -1)
        state = None
        taken, log_prob, entropy = [], 0.0, 0.0
        for t, h in enumerate(self._head_of):
            out, state = self.lstm(x.unsqueeze(0), state)
            logp = F.log_softmax(self.heads[h](out[0]), dim=-1)
            if actions is None:
                a = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
            else:
                a = actions[:, t]
            taken.append(a)
            log_prob = log_prob + logp.gather(1, a.unsqueeze(1)).squeeze(1)
            entropy = entropy - (logp.exp() * logp).sum(1)
            x = self.embeddings[h](a)
        return torch.stack(taken, 1), log_prob, entropy

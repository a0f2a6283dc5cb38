"""Exact Shapley values of the parties of a vertical job, from the metrics of every coalition's model.

Players are the job's parties (2 to `MAX_SHAPLEY_PARTIES`). One of them holds
the label (``label_party``): no model can be trained without it. A coalition
*S* is a set of parties; its model is trained on the features of the parties
in *S* only (the rows and the evaluation stay those of the whole job). Its
value, on the scale of the metric's improvement over a model without any
feature::

    v(S) = 0                                  if the label party is not in S (no model without a label)
    v(S) = sign * (metric(S) - baseline)      otherwise; sign = +1 if higher is better, else -1
    metric(S) = baseline                      when S brings no feature (no model to train)

``baseline`` is the metric of a model with no feature (a constant score):
0.5 for AUC, 0 for KS and for R2. So v(empty set) = 0, and only the
2^(N-1) coalitions that hold the label party are measured (each one a real
job, named in the inputs by its job id).

The Shapley value of party *i* is, exactly (`fractions.Fraction`)::

    phi_i = sum over S not holding i of  |S|! (N - |S| - 1)! / N!  *  (v(S + i) - v(S))

so the values sum to v(N) - v(empty set) = v(N) (efficiency), and two parties
that change every coalition alike get the same value (symmetry). A value may
be negative: a party whose features make the models worse on average. Weights
are basis points in proportion to max(0, phi_i); when no party has a positive
value (v(N) <= 0 and nothing helps), the parties split equally (fallback
``equal_split``), as for leave-one-out.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from fractions import Fraction
from itertools import combinations
from math import factorial
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from secureflow.ledger.receipts import Address, Hex32
from secureflow.ledger.records import Identifier

MAX_SHAPLEY_PARTIES = 4
"""At most 4 parties: 2^(N-1) coalitions, each a real job (8 jobs for 4 parties)."""

P = TypeVar("P", bound=Hashable)


def shapley_values(players: Sequence[P], value: Callable[[frozenset[P]], Fraction]) -> list[Fraction]:
    """The exact Shapley value of each player (in ``players`` order) of the game ``value`` (a coalition's
    worth, ``value(frozenset())`` included)."""
    n = len(players)
    if n == 0 or len(set(players)) != n:
        raise ValueError("the players must be distinct and at least one")
    worth: dict[frozenset[P], Fraction] = {}

    def v(coalition: frozenset[P]) -> Fraction:
        if coalition not in worth:
            worth[coalition] = Fraction(value(coalition))
        return worth[coalition]

    n_fact = factorial(n)
    values: list[Fraction] = []
    for player in players:
        others = [p for p in players if p != player]
        total = Fraction(0)
        for size in range(n):
            weight = Fraction(factorial(size) * factorial(n - size - 1), n_fact)
            for subset in combinations(others, size):
                s = frozenset(subset)
                total += weight * (v(s | {player}) - v(s))
        values.append(total)
    return values


class CoalitionMetric(BaseModel):
    """The metric of the model trained on the features of ``parties`` (the label party always among them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parties: tuple[Address, ...] = Field(min_length=1, max_length=MAX_SHAPLEY_PARTIES)
    metric: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="the coalition's metric; null when its parties bring no feature (its value is baseline)",
    )
    job_id: Hex32 | None = Field(default=None, description="the coalition's job on the audit ledger")


class ShapleyInputs(BaseModel):
    """Inputs of method (c): exact Shapley values over every coalition that holds the label party."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["shapley"] = "shapley"
    metric: Identifier = Field(description="the evaluation metric's name, e.g. auc")
    higher_is_better: bool = True
    baseline: float = Field(allow_inf_nan=False, description="the metric of a model without any feature")
    label_party: Address
    parties: tuple[Address, ...] = Field(min_length=2, max_length=MAX_SHAPLEY_PARTIES)
    coalitions: tuple[CoalitionMetric, ...] = Field(min_length=1, max_length=2 ** (MAX_SHAPLEY_PARTIES - 1))

    @model_validator(mode="after")
    def _valid(self) -> ShapleyInputs:
        members = [p.lower() for p in self.parties]
        if len(set(members)) != len(members):
            raise ValueError("a party appears twice")
        label = self.label_party.lower()
        if label not in members:
            raise ValueError(f"the label party {self.label_party} is not one of the parties")
        seen: set[frozenset[str]] = set()
        for coalition in self.coalitions:
            key = frozenset(p.lower() for p in coalition.parties)
            if len(key) != len(coalition.parties) or not key <= set(members) or label not in key:
                raise ValueError(
                    f"coalition {list(coalition.parties)} must name distinct parties of the job, the label "
                    "party among them"
                )
            if key in seen:
                raise ValueError(f"coalition {list(coalition.parties)} appears twice")
            seen.add(key)
        others = [m for m in members if m != label]
        wanted = {
            frozenset({label, *subset})
            for size in range(len(others) + 1)
            for subset in combinations(others, size)
        }
        if seen != wanted:
            raise ValueError(
                f"give the metric of each of the {len(wanted)} coalitions that hold the label party "
                f"(got {len(seen)})"
            )
        if self.coalition_metric(frozenset(members)) is None:
            raise ValueError("the coalition of every party has no metric")
        return self

    @property
    def members(self) -> tuple[str, ...]:
        return self.parties

    def parameters(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "baseline": self.baseline,
            "label_party": self.label_party.lower(),
        }

    def coalition_metric(self, parties: frozenset[str]) -> float | None:
        """The metric of the coalition of ``parties`` (lower-case addresses)."""
        for coalition in self.coalitions:
            if frozenset(p.lower() for p in coalition.parties) == parties:
                return coalition.metric
        raise KeyError(sorted(parties))

    def evidence_jobs(self) -> list[tuple[str, str]]:
        """(coalition, job id) of every coalition measured by a job."""
        return [("{" + ", ".join(c.parties) + "}", c.job_id) for c in self.coalitions if c.job_id is not None]


def exact(value: float | int) -> Fraction:
    """The exact rational a number prints as (``0.1`` -> 1/10)."""
    return Fraction(value) if isinstance(value, int) else Fraction(repr(float(value)))


def coalition_value(inputs: ShapleyInputs, coalition: frozenset[str]) -> Fraction:
    """v(S) of the module docstring, exact (``coalition``: lower-case addresses)."""
    if inputs.label_party.lower() not in coalition:
        return Fraction(0)
    metric = inputs.coalition_metric(coalition)
    if metric is None:
        return Fraction(0)
    sign = 1 if inputs.higher_is_better else -1
    return sign * (exact(metric) - exact(inputs.baseline))


def party_shapley_values(inputs: ShapleyInputs) -> list[Fraction]:
    """Each party's exact Shapley value (in ``inputs.parties`` order)."""
    players = [p.lower() for p in inputs.parties]
    return shapley_values(players, lambda s: coalition_value(inputs, s))

"""Exact Shapley values (`secureflow.ledger.settlement.shapley`) and the ``shapley`` contribution method.

A hand-computed 3-player game (label holder alice, feature holders bob and carol) gives exact values and
basis points; hypothesis checks efficiency (the values sum to v(N) - v(empty set)), symmetry and the
null player on random games of 1 to 4 players. The inputs are validated (every coalition holding the
label party, once; at most 4 parties), and a proposal of method ``shapley`` round-trips.
"""

from __future__ import annotations

import json
from fractions import Fraction
from itertools import combinations
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from stack import ALICE, BOB

from secureflow.ledger.devchain import DEV_PRIVATE_KEYS
from secureflow.ledger.settlement.contribution import (
    ContributionProposal,
    compute_weights,
    inputs_digest,
    parse_inputs,
    prepare_contribution,
)
from secureflow.ledger.settlement.errors import ContributionError
from secureflow.ledger.settlement.shapley import ShapleyInputs, party_shapley_values, shapley_values

CAROL = Account.from_key(DEV_PRIVATE_KEYS[3]).address
DAVE = Account.from_key(DEV_PRIVATE_KEYS[4]).address
EVE = Account.from_key("0x" + "e5" * 32).address
JOB = "0x" + "ab" * 32
SALT = "0x" + "5a" * 32


def shapley(metrics: dict[tuple[str, ...], float | None], **params: Any) -> ShapleyInputs:
    """Inputs of alice (label), bob and carol with the metric of each coalition (keys: its parties)."""
    parties = params.pop("parties", [ALICE, BOB, CAROL])
    document = {
        "method": "shapley",
        "metric": "auc",
        "baseline": 0.5,
        "label_party": ALICE,
        "parties": parties,
        "coalitions": [{"parties": list(k), "metric": v} for k, v in metrics.items()],
        **params,
    }
    inputs = parse_inputs(document)
    assert isinstance(inputs, ShapleyInputs)
    return inputs


# v({alice}) = 0.1, v({alice, bob}) = 0.3, v({alice, carol}) = 0.2, v(all) = 0.4 (AUC - 0.5); 0 without alice
GAME = {(ALICE,): 0.6, (ALICE, BOB): 0.8, (ALICE, CAROL): 0.7, (ALICE, BOB, CAROL): 0.9}


def test_a_hand_computed_three_player_game() -> None:
    # phi_alice = 1/3 * 0.1 + 1/6 * 0.3 + 1/6 * 0.2 + 1/3 * 0.4                 = 1/4
    # phi_bob   = 1/3 * 0 + 1/6 * (0.3 - 0.1) + 1/6 * 0 + 1/3 * (0.4 - 0.2)     = 1/10
    # phi_carol = 1/3 * 0 + 1/6 * (0.2 - 0.1) + 1/6 * 0 + 1/3 * (0.4 - 0.3)     = 1/20
    inputs = shapley(GAME)
    assert party_shapley_values(inputs) == [Fraction(1, 4), Fraction(1, 10), Fraction(1, 20)]
    result = compute_weights(inputs)
    assert result.method == "shapley" and result.members == (ALICE, BOB, CAROL)
    assert result.bps == (6250, 2500, 1250) and result.fallback is None  # 5 : 2 : 1


def test_a_negative_value_gets_nothing() -> None:
    # carol's features make every model worse: v({alice, carol}) = 0.05, v(all) = 0.25
    inputs = shapley({**GAME, (ALICE, CAROL): 0.55, (ALICE, BOB, CAROL): 0.75})
    values = party_shapley_values(inputs)
    assert values == [Fraction(7, 40), Fraction(1, 10), Fraction(-1, 40)]  # sum 1/4 = v(all)
    bps = compute_weights(inputs).bps
    assert bps[2] == 0 and sum(bps) == 10_000 and bps[0] * 4 == pytest.approx(bps[1] * 7, abs=8)


def test_lower_is_better_and_the_equal_split() -> None:
    mse = {(ALICE,): 1.0, (ALICE, BOB): 0.8, (ALICE, CAROL): 0.9, (ALICE, BOB, CAROL): 0.7}
    inputs = shapley(mse, metric="mean_squared_errors", higher_is_better=False, baseline=1.2)
    values = party_shapley_values(inputs)
    assert sum(values) == Fraction(1, 2)  # v(all) = -(0.7 - 1.2)
    assert all(v > 0 for v in values)
    # nothing beats a model without features: every value is at most 0, so the parties split equally
    flat = shapley({k: 0.5 for k in GAME})
    result = compute_weights(flat)
    assert result.fallback == "equal_split" and result.bps == (3334, 3333, 3333)


def test_a_coalition_without_features_is_worth_the_baseline() -> None:
    # alice brings only the label: {alice} trains no model (metric null, value 0); bob and carol split
    # everything with her: without alice no model, without features no model
    inputs = shapley({**GAME, (ALICE,): None})
    values = party_shapley_values(inputs)
    assert sum(values) == Fraction(2, 5)
    # phi_alice = 1/6 * 0.3 + 1/6 * 0.2 + 1/3 * 0.4 = 13/60; phi_bob = 1/6 * 0.3 + 1/3 * 0.2 = 7/60;
    # phi_carol = 1/6 * 0.2 + 1/3 * 0.1 = 4/60
    assert values == [Fraction(13, 60), Fraction(7, 60), Fraction(4, 60)]


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ContributionError, match="give the metric of each of the 4 coalitions"):
        shapley({k: v for k, v in GAME.items() if k != (ALICE, CAROL)})
    with pytest.raises(ContributionError, match="the label party among them"):
        shapley({**GAME, (BOB, CAROL): 0.7})
    with pytest.raises(ContributionError, match="is not one of the parties"):
        shapley(GAME, label_party=DAVE)
    with pytest.raises(ContributionError, match="appears twice"):
        shapley({**GAME, (BOB, ALICE): 0.8})
    with pytest.raises(ContributionError, match="at most 4"):
        shapley(GAME, parties=[ALICE, BOB, CAROL, DAVE, EVE])
    with pytest.raises(ContributionError, match="every party has no metric"):
        shapley({**GAME, (ALICE, BOB, CAROL): None})


def test_a_shapley_proposal_round_trips_and_hides_the_metrics() -> None:
    inputs = shapley(GAME)
    proposal = prepare_contribution(JOB, 3, inputs, job_parties=[CAROL, BOB, ALICE], salt=SALT)
    assert proposal.method == "shapley" and proposal.bps == (6250, 2500, 1250)
    again = ContributionProposal.model_validate_json(proposal.to_json())
    again.verify()  # what a member runs before approving
    assert again.inputs == inputs
    assert "0.9" not in json.dumps(proposal.record) and proposal.inputs_digest == inputs_digest(inputs, SALT)


# ------------------------------------------------------------------ properties


def games(max_players: int = 4) -> st.SearchStrategy[tuple[list[int], dict[frozenset[int], Fraction]]]:
    """A random game: players 0..n-1 and a worth for every coalition (the empty one too)."""

    def build(n: int) -> st.SearchStrategy[tuple[list[int], dict[frozenset[int], Fraction]]]:
        coalitions = [frozenset(c) for size in range(n + 1) for c in combinations(range(n), size)]
        worth = st.fractions(min_value=-10, max_value=10, max_denominator=1000)
        return st.lists(worth, min_size=len(coalitions), max_size=len(coalitions)).map(
            lambda values: (list(range(n)), dict(zip(coalitions, values, strict=True)))
        )

    return st.integers(min_value=1, max_value=max_players).flatmap(build)


@settings(max_examples=60, deadline=None)
@given(games())
def test_efficiency(game: tuple[list[int], dict[frozenset[int], Fraction]]) -> None:
    players, worth = game
    values = shapley_values(players, worth.__getitem__)
    assert sum(values) == worth[frozenset(players)] - worth[frozenset()]


@settings(max_examples=60, deadline=None)
@given(games())
def test_symmetry_and_the_null_player(game: tuple[list[int], dict[frozenset[int], Fraction]]) -> None:
    players, worth = game
    if len(players) < 2:
        return

    def symmetric(coalition: frozenset[int]) -> Fraction:
        # players 0 and 1 are interchangeable: the worth depends on how many of them are in, not which
        swapped = frozenset({1} if coalition & {0, 1} == {0} else coalition & {0, 1}) | (coalition - {0, 1})
        return worth[swapped]

    values = shapley_values(players, symmetric)
    assert values[0] == values[1]

    def without_last(coalition: frozenset[int]) -> Fraction:
        return worth[coalition - {players[-1]}]  # the last player never changes anything

    assert shapley_values(players, without_last)[-1] == 0


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=2, max_value=4),
    st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=8, max_size=8),
    st.booleans(),
)
def test_inputs_efficiency_and_weights(n: int, metrics: list[float], higher_is_better: bool) -> None:
    """For any metrics of the coalitions holding the label party: the parties' values sum to
    sign * (metric(all) - baseline), and the weights are basis points summing to 10,000."""
    parties = [ALICE, BOB, CAROL, DAVE][:n]
    others = parties[1:]
    coalitions = [(ALICE, *s) for size in range(n) for s in combinations(others, size)]
    document = {
        "method": "shapley",
        "metric": "auc",
        "higher_is_better": higher_is_better,
        "baseline": 0.5,
        "label_party": ALICE,
        "parties": parties,
        "coalitions": [{"parties": list(c), "metric": m} for c, m in zip(coalitions, metrics, strict=False)],
    }
    inputs = parse_inputs(document)
    assert isinstance(inputs, ShapleyInputs)
    full = next(m for c, m in zip(coalitions, metrics, strict=False) if len(c) == n)
    sign = 1 if higher_is_better else -1
    assert sum(party_shapley_values(inputs)) == sign * (Fraction(repr(full)) - Fraction(1, 2))
    result = compute_weights(inputs)
    assert sum(result.bps) == 10_000 and len(result.bps) == n

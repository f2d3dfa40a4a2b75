"""Pareto dominance, fronts, ranks and thinning on loss vectors."""

from __future__ import annotations

import numpy as np

from dial.search.pareto import crowding_distance, dominates, non_domination_ranks, pareto_front, spread_subset


def test_dominance_needs_no_worse_everywhere_and_better_somewhere() -> None:
    assert dominates((1, 1), (2, 1))
    assert not dominates((1, 1), (1, 1))
    assert not dominates((1, 3), (2, 1))
    assert not dominates((2, 1), (1, 1))


def test_front_of_a_trade_off_keeps_every_non_dominated_point_in_order() -> None:
    losses = [(1, 5), (2, 4), (3, 3), (2.5, 4.5), (4, 1), (5, 5)]
    assert pareto_front(losses) == [0, 1, 2, 4]


def test_duplicates_and_ties_all_stay_on_the_front() -> None:
    losses = [(1, 2), (1, 2), (2, 1), (1, 3)]
    # (1, 3) ties (1, 2) in the first objective and is worse in the second: dominated.
    assert pareto_front(losses) == [0, 1, 2]


def test_ranks_peel_fronts_one_after_another() -> None:
    losses = [(1, 4), (4, 1), (2, 5), (5, 2), (6, 6), (1, 4)]
    assert non_domination_ranks(losses).tolist() == [0, 0, 1, 1, 2, 0]


def test_three_objectives() -> None:
    losses = [(1, 1, 9), (9, 1, 1), (1, 9, 1), (2, 2, 9), (5, 5, 5)]
    assert pareto_front(losses) == [0, 1, 2, 4]


def test_empty_and_single_inputs() -> None:
    assert pareto_front([]) == []
    assert pareto_front([(3.0, 1.0)]) == [0]
    assert non_domination_ranks([]).tolist() == []


def test_crowding_distance_makes_extremes_infinite_and_measures_neighbours() -> None:
    distance = crowding_distance([(0, 4), (1, 3), (3, 1), (4, 0)])
    assert np.isinf(distance[0]) and np.isinf(distance[3])
    # (1, 3): neighbours (0, 4) and (3, 1) -> 3/4 in each objective.
    assert distance[1] == 1.5 and distance[2] == 1.5


def test_spread_subset_keeps_extremes_and_drops_the_most_crowded_first() -> None:
    losses = [(0, 10), (1, 9), (1.1, 8.9), (5, 5), (10, 0)]
    keep = spread_subset(losses, 3)
    assert keep == [0, 3, 4]
    assert spread_subset(losses, 10) == [0, 1, 2, 3, 4]


def test_spread_subset_drops_duplicates_before_distinct_points() -> None:
    losses = [(0, 2), (1, 1), (1, 1), (2, 0)]
    assert spread_subset(losses, 3) == [0, 1, 3]

"""Pareto dominance on loss vectors (lower is better in every column): fronts, ranks, spread."""

from __future__ import annotations

import numpy as np


def _as_matrix(losses: np.ndarray | list[tuple[float, ...]]) -> np.ndarray:
    matrix = np.asarray(losses, dtype=float)
    return matrix.reshape(len(matrix), -1) if matrix.size else matrix.reshape(0, 0)


def dominates(a: np.ndarray | tuple[float, ...], b: np.ndarray | tuple[float, ...]) -> bool:
    """True when `a` is no worse than `b` in every objective and better in at least one."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(a <= b) and np.any(a < b))


def _dominated(matrix: np.ndarray, among: np.ndarray) -> np.ndarray:
    """For each row of `matrix[among]`, whether another row of `matrix[among]` dominates it."""
    rows = matrix[among]
    out = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        # Equal rows do not dominate each other: duplicates share a rank.
        out[i] = bool(np.any(np.all(rows <= row, axis=1) & np.any(rows < row, axis=1)))
    return out


def non_domination_ranks(losses: np.ndarray | list[tuple[float, ...]]) -> np.ndarray:
    """Rank 0 for the Pareto front, 1 for the front once rank 0 is removed, and so on."""
    matrix = _as_matrix(losses)
    ranks = np.full(len(matrix), -1, dtype=int)
    remaining = np.arange(len(matrix))
    rank = 0
    while len(remaining):
        dominated = _dominated(matrix, remaining)
        ranks[remaining[~dominated]] = rank
        remaining = remaining[dominated]
        rank += 1
    return ranks


def pareto_front(losses: np.ndarray | list[tuple[float, ...]]) -> list[int]:
    """Indices of the non-dominated rows, in their original order (ties and duplicates all stay)."""
    matrix = _as_matrix(losses)
    if not len(matrix):
        return []
    return [int(i) for i in np.flatnonzero(~_dominated(matrix, np.arange(len(matrix))))]


def crowding_distance(losses: np.ndarray | list[tuple[float, ...]]) -> np.ndarray:
    """NSGA-II's crowding distance: how much room a point has along the front (extremes: infinite)."""
    matrix = _as_matrix(losses)
    n = len(matrix)
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for column in matrix.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


def spread_subset(losses: np.ndarray | list[tuple[float, ...]], k: int) -> list[int]:
    """At most `k` indices spread along the points: drop the most crowded one until `k` remain.

    Extremes of every objective go last; among equally crowded points the later one goes first,
    so the result is deterministic.
    """
    matrix = _as_matrix(losses)
    keep = list(range(len(matrix)))
    while len(keep) > k:
        distance = crowding_distance(matrix[keep])
        most_crowded = min(range(len(keep)), key=lambda i: (distance[i], -keep[i]))
        del keep[most_crowded]
    return keep

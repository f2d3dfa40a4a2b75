"""A node's shape (what it registers as capacity) and its GPU ids, which pods on the node share
and must never be handed out twice."""
from __future__ import annotations

import threading


class GPUPool:
    def __init__(self, count: int):
        self.free = list(range(count))
        self.lock = threading.Lock()

    def take(self, n: int) -> list[int]:
        with self.lock:
            if n > len(self.free):
                raise RuntimeError(f"UnexpectedAdmissionError: {n} nvidia.com/gpu requested, {len(self.free)} free")
            got, self.free = self.free[:n], self.free[n:]
            return got

    def give(self, ids: list[int]) -> None:
        with self.lock:
            self.free = sorted(set(self.free) | set(ids))


class Node:
    def __init__(self, name: str, cpu: str, memory: str, gpus: int, pods: int):
        self.name, self.cpu, self.memory, self.gpus, self.pods = name, cpu, memory, gpus, pods
        self.gpu_pool = GPUPool(gpus)

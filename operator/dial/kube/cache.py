"""Watch-fed copies of what the reconciler reads (Experiments and their Trials, Jobs and pods), so that a
reconcile triggered by an event costs no LIST.

Fed by the same kopf watch events that queue reconciles (an event is stored before the reconcile it
queues runs, so a reconcile sees at least what triggered it), by the operator's own writes (the objects
the API server returns: a reconcile sees its own creates and patches before their watch events come
back), and by the fresh LISTs the reconciler still makes for an experiment it has not read lately
(`FRESH_SECONDS`: at start, after a failed reconcile or a conflicting write, and every tenth resync).

The rules that keep a cache safe for a crash-only operator:
- Never go back: an object is replaced only by a newer resourceVersion, so a late watch event cannot
  undo a write the cache has already seen. A deletion leaves a tombstone that an older LIST cannot undo.
- Names are deterministic and a create that finds its object (409) reads the stored one: a proposal made
  from a cache that has not seen a trial yet never becomes a second trial with other parameters.
- A trial is finalised from a fresh GET, never from the cache: its Job's end and the collector's last
  patch are events of two different objects, and a cache may have seen one before the other.
- A status computed from a cached Experiment is written onto that copy's resourceVersion: a copy behind the
  API server (a user's edit, our own write not yet seen) conflicts, and the reconcile is redone fresh.
`tests/unit/test_stale_cache.py` checks each rule with a cache that lags on purpose.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable, Literal

from dial.api.base import EXPERIMENT_LABEL

Kind = Literal["experiments", "trials", "jobs", "pods"]
KINDS: tuple[Kind, ...] = ("experiments", "trials", "jobs", "pods")
# An experiment read from the cache longer than this since its last fresh LIST is read fresh again (`dial
# operator` uses ten resyncs: a lagging cache is safe, fresh reads only catch what a watch lost).
FRESH_SECONDS = 300.0
# Tombstones only guard against late copies of recent deletions; the oldest go first beyond this many.
MAX_TOMBSTONES = 20_000

Key = tuple[str, str]  # (namespace, name)


def _version(obj: dict[str, Any]) -> int | None:
    rv = obj.get("metadata", {}).get("resourceVersion")
    return int(rv) if isinstance(rv, str) and rv.isdigit() else None


def _is_older(new: int | None, old: int | None) -> bool:
    # resourceVersions are opaque to clients in general; etcd's are increasing integers, and anything else
    # (none, or not a number) is taken as newer rather than dropped.
    return new is not None and old is not None and new < old


def _deleted_since(tombstone: int | None, version: int | None) -> bool:
    """A copy at `version` predates (or is) the deleted one."""
    return tombstone is not None and version is not None and version <= tombstone


def _key(obj: dict[str, Any]) -> Key:
    metadata = obj["metadata"]
    return metadata.get("namespace") or "", metadata["name"]


def _experiment_of(kind: Kind, obj: dict[str, Any]) -> str | None:
    if kind == "experiments":
        return obj["metadata"]["name"]
    return (obj["metadata"].get("labels") or {}).get(EXPERIMENT_LABEL)


class ObjectCache:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, fresh_seconds: float = FRESH_SECONDS):
        self._lock = threading.Lock()
        self._objects: dict[Kind, dict[Key, dict[str, Any]]] = {k: {} for k in KINDS}
        self._tombstones: dict[Kind, dict[Key, int | None]] = {k: {} for k in KINDS}
        self._read_fresh_at: dict[Key, float] = {}
        self._clock = clock
        self.fresh_seconds = fresh_seconds

    # -- feeding
    def observe(self, kind: Kind, obj: dict[str, Any], *, deleted: bool = False) -> None:
        """A watch event's object, or one the API server returned to a write or a GET."""
        key, version = _key(obj), _version(obj)
        with self._lock:
            store, tombstones = self._objects[kind], self._tombstones[kind]
            current = store.get(key)
            if current is not None and _is_older(version, _version(current)):
                return
            if deleted:
                store.pop(key, None)
                self._bury(kind, key, version)
                return
            if _deleted_since(tombstones.get(key), version):
                return  # an older copy of something already deleted
            tombstones.pop(key, None)
            store[key] = obj

    def forget(self, kind: Kind, namespace: str, name: str) -> None:
        """The operator deleted it (its watch event, with the final version, follows)."""
        with self._lock:
            gone = self._objects[kind].pop((namespace, name), None)
            if gone is not None:
                self._bury(kind, (namespace, name), _version(gone))

    def _bury(self, kind: Kind, key: Key, version: int | None) -> None:
        tombstones = self._tombstones[kind]
        tombstones.pop(key, None)
        tombstones[key] = version
        while len(tombstones) > MAX_TOMBSTONES:
            del tombstones[next(iter(tombstones))]

    def replace(self, kind: Kind, namespace: str, experiment: str, items: Iterable[dict[str, Any]]) -> None:
        """A fresh LIST of one experiment's objects of a kind: what it lacks is dropped, what it has is stored
        unless the cache has a newer copy. An object created between the LIST and this call is dropped too;
        its next event or the next fresh read brings it back (a Trial or Job only this reconcile creates, after
        this call, so only a pod can be missed that way, for a moment)."""
        listed = {_key(o): o for o in items}
        with self._lock:
            store, tombstones = self._objects[kind], self._tombstones[kind]
            for key in [k for k, o in store.items() if k[0] == namespace and _experiment_of(kind, o) == experiment]:
                if key not in listed:
                    del store[key]
            for key, obj in listed.items():
                current = store.get(key)
                if current is not None and _is_older(_version(obj), _version(current)):
                    continue
                if _deleted_since(tombstones.get(key), _version(obj)):
                    continue
                tombstones.pop(key, None)
                store[key] = obj

    # -- reading
    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects[kind].get((namespace, name))

    def list(self, kind: Kind, namespace: str, experiment: str) -> list[dict[str, Any]]:
        with self._lock:
            return [o for (ns, _), o in self._objects[kind].items()
                    if ns == namespace and _experiment_of(kind, o) == experiment]

    # -- when to read fresh
    def needs_fresh_read(self, namespace: str, experiment: str) -> bool:
        with self._lock:
            at = self._read_fresh_at.get((namespace, experiment))
        return at is None or self._clock() - at > self.fresh_seconds

    def read_fresh(self, namespace: str, experiment: str) -> None:
        with self._lock:
            self._read_fresh_at[(namespace, experiment)] = self._clock()

    def distrust(self, namespace: str, experiment: str) -> None:
        """The next reconcile of this experiment reads fresh (its last one failed: the cache may be why)."""
        with self._lock:
            self._read_fresh_at.pop((namespace, experiment), None)

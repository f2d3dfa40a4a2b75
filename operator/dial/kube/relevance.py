"""Which watch events can change a reconcile's outcome: the rest (most pod and Job status updates, the
echoes of the operator's own status writes) are dropped before they queue a reconcile.

Each kind has a fingerprint of exactly the fields the reconciler reads from it; an event whose object
has the fingerprint last seen for that object changes nothing. Dropping is safe because a reconcile
reads everything fresh: whatever a dropped event carried is seen by the next reconcile, and the
periodic resync bounds how long that can take.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable

Fingerprint = Hashable


def experiment_fingerprint(body: dict[str, Any]) -> Fingerprint:
    """The spec (its generation) and deletion: the status is the operator's own output."""
    metadata = body.get("metadata") or {}
    return metadata.get("generation"), bool(metadata.get("deletionTimestamp"))


def job_fingerprint(body: dict[str, Any]) -> Fingerprint:
    """How the Job ended, if it did (`job_outcome` reads only its true conditions)."""
    metadata = body.get("metadata") or {}
    conditions = (body.get("status") or {}).get("conditions") or []
    ended = tuple(sorted((c.get("type"), c.get("reason")) for c in conditions if c.get("status") == "True"))
    return bool(metadata.get("deletionTimestamp")), ended


def pod_fingerprint(body: dict[str, Any]) -> Fingerprint:
    """Each container's state (waiting and why, running, terminated and how): not probes, IPs or conditions."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}

    def states(key: str) -> tuple[Any, ...]:
        out = []
        for container in status.get(key) or []:
            state = container.get("state") or {}
            kind = next(iter(state), None)  # waiting | running | terminated
            detail = state.get(kind) or {}
            out.append((container.get("name"), kind, detail.get("reason"), detail.get("exitCode")))
        return tuple(sorted(out, key=repr))

    return bool(metadata.get("deletionTimestamp")), status.get("phase"), states("containerStatuses")


class ChangeFilter:
    """Remembers each object's last fingerprint (by uid); `changed` says whether an event is worth a reconcile."""

    def __init__(self, fingerprint: Callable[[dict[str, Any]], Fingerprint]):
        self.fingerprint = fingerprint
        self._seen: dict[str, Fingerprint] = {}
        self._lock = threading.Lock()
        self.n_dropped = 0

    def changed(self, event_type: str | None, body: dict[str, Any]) -> bool:
        uid = (body.get("metadata") or {}).get("uid")
        if uid is None:
            return True
        with self._lock:
            if event_type == "DELETED":
                self._seen.pop(uid, None)
                return True
            current = self.fingerprint(body)
            if self._seen.get(uid) == current:
                self.n_dropped += 1
                return False
            self._seen[uid] = current
            return True

    def __len__(self) -> int:
        return len(self._seen)

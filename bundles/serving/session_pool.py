"""Server-side sessions of an interactive model: one per client and image, bounded, evicted when idle.

MONAI Label requests are stateless, but a click model's second click should cost only its decoder: the
session (a :class:`bundles.interactive.session.ClickSession`) keeps the image on the model grid, its cached
window embeddings and each object's click history between requests. The pool keeps at most
``max_sessions`` of them (the least recently used goes first) and drops any idle for ``idle_seconds``
(as CCI-Bonn/OHIF-AI's session pool for nnInteractive does); each session has its own lock, so two requests
of one client never interleave.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["SessionPool", "PooledSession"]

S = TypeVar("S")


@dataclass
class PooledSession(Generic[S]):
    """A session with its lock, when it was last used, and whether this request created it."""

    session: S
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    created: bool = True
    state: dict[str, Any] = field(default_factory=dict)  # what the caller keeps beside the session


class SessionPool(Generic[S]):
    """Sessions by key (e.g. ``(client, image)``), made by ``factory()`` when missing.

    Args:
        factory: makes a new session (sharing the model's weights with the others).
        max_sessions: how many sessions are kept; the least recently used one is dropped beyond.
        idle_seconds: sessions unused for longer are dropped (checked on every :meth:`get`).
    """

    def __init__(self, factory: Callable[[], S], max_sessions: int = 4, idle_seconds: float = 600.0):
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self.factory = factory
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self._sessions: OrderedDict[Hashable, PooledSession[S]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> PooledSession[S]:
        """The session of ``key`` (``created`` tells whether it is new); idle and surplus sessions are dropped."""
        now = time.monotonic()
        with self._lock:
            for stale in [k for k, s in self._sessions.items() if now - s.last_used > self.idle_seconds]:
                del self._sessions[stale]
            pooled = self._sessions.pop(key, None)
            if pooled is None:
                pooled = PooledSession(self.factory())
            else:
                pooled.created = False
            pooled.last_used = now
            self._sessions[key] = pooled
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
            return pooled

    def __len__(self) -> int:
        return len(self._sessions)

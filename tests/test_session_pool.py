"""The server's session pool: one session per key, least recently used dropped beyond the bound, idle ones
dropped, a new session when a dropped key comes back."""

from __future__ import annotations

import itertools

import pytest

from bundles.serving.session_pool import SessionPool


def _pool(**kwargs) -> SessionPool[int]:
    counter = itertools.count()
    return SessionPool(lambda: next(counter), **kwargs)


def test_a_key_gets_its_own_session_and_keeps_it():
    pool = _pool(max_sessions=2)
    a = pool.get("a")
    assert a.session == 0 and a.created
    b = pool.get("b")
    assert b.session == 1 and b.created
    again = pool.get("a")
    assert again is a and again.session == 0 and not again.created


def test_the_least_recently_used_session_goes_first():
    pool = _pool(max_sessions=2)
    pool.get("a"), pool.get("b"), pool.get("a"), pool.get("c")  # b is the least recently used
    assert len(pool) == 2
    assert not pool.get("a").created and pool.get("b").created  # b came back as a new session


def test_idle_sessions_are_dropped(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("bundles.serving.session_pool.time.monotonic", lambda: now[0])
    pool = _pool(max_sessions=4, idle_seconds=60)
    first = pool.get("a")
    now[0] += 59
    assert pool.get("a") is first
    now[0] += 61
    assert pool.get("b").created and len(pool) == 1  # a was idle for 61 s
    assert pool.get("a").created


def test_a_pool_needs_room_for_one_session():
    with pytest.raises(ValueError, match="max_sessions"):
        _pool(max_sessions=0)

"""The state cache: live states, one serialized write per dirty account per flush."""

from __future__ import annotations

import json

from streams.state_cache import StateCache


def _cache(table: dict[bytes, bytes], max_clean: int = 100) -> StateCache:
    return StateCache(table, dict, lambda b: json.loads(b), lambda s: json.dumps(s).encode(), max_clean=max_clean)


def test_many_changes_to_one_account_flush_as_one_write_on_its_partition() -> None:
    """Ten updates of one account in a batch become a single state write for its partition."""
    cache = _cache({})
    for i in range(10):
        cache.get("acme", 3)["n"] = i
        cache.mark_dirty("acme", 3)
    assert cache.flush() == {3: {"acme": b'{"n": 9}'}}
    assert cache.flush() == {}


def test_state_is_loaded_from_the_table_when_not_cached() -> None:
    """An account not in memory starts from the recovered table value."""
    cache = _cache({b"acme": b'{"n": 41}'})
    assert cache.get("acme", 0) == {"n": 41}


def test_drop_partitions_and_eviction_forget_states() -> None:
    """Revoked partitions' states are dropped; clean states beyond the bound are evicted (LRU)."""
    cache = _cache({}, max_clean=1)
    cache.get("a", 0)
    cache.get("b", 1)
    cache.mark_dirty("b", 1)
    cache.drop_partitions([1])
    assert cache.flush() == {}
    cache.get("c", 0)
    cache.flush()
    assert len(cache) == 1

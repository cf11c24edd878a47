"""The state cache: live states, one serialized write per dirty account per flush."""

from __future__ import annotations

import json

from streams.worker.state_cache import StateCache


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


def test_an_evicted_state_whose_write_is_pending_is_read_back_from_the_flushed_bytes() -> None:
    """While a flushed state is not yet written to the table (its batch's alerts are still being
    delivered), an eviction does not send the next batch back to the table's older value."""
    table = {b"a": b'{"n": 1}'}
    cache = _cache(table, max_clean=1)
    cache.get("a", 0)["n"] = 2
    cache.mark_dirty("a", 0)
    first = cache.flush()
    cache.get("b", 0)
    cache.flush()  # evicts "a": one clean state at most
    assert cache.unwritten == 1
    assert cache.get("a", 0) == {"n": 2}  # the flushed bytes, not the table's {"n": 1}
    cache.get("a", 0)["n"] = 3
    cache.mark_dirty("a", 0)
    second = cache.flush()
    cache.written(first)  # the older write landing does not hide the newer pending one
    cache.get("b", 0)
    cache.flush()
    assert cache.get("a", 0) == {"n": 3}
    table[b"a"] = second[0]["a"]
    cache.written(second)
    assert cache.unwritten == 0


def test_pending_writes_of_dropped_partitions_are_forgotten() -> None:
    """A revoked partition's unwritten states go with it (the new owner recovers from the changelog)."""
    cache = _cache({})
    for account, partition in (("a", 0), ("b", 1)):
        cache.get(account, partition)["n"] = 1
        cache.mark_dirty(account, partition)
    cache.flush()
    cache.drop_partitions([1])
    assert cache.unwritten == 1
    cache.clear()
    assert cache.unwritten == 0


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


def _quarantined_total(reason: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("preempt_accounts_quarantined_total", {"reason": reason}) or 0.0


def test_unreadable_stored_state_is_quarantined_and_the_account_starts_afresh() -> None:
    """Corrupt bytes in the table: a fresh state, written, and the old bytes kept aside with the reason."""
    before = _quarantined_total("state_unreadable")
    cache = _cache({b"acme": b"\x00garbage"})
    assert cache.get("acme", 2) == {}
    [q] = cache.take_quarantined()
    assert (q.account_id, q.partition, q.reason, q.kept) == ("acme", 2, "state_unreadable", b"\x00garbage")
    assert "JSONDecodeError" in q.detail
    assert cache.flush() == {2: {"acme": b"{}"}}
    assert _quarantined_total("state_unreadable") == before + 1


def test_a_state_the_encoder_refuses_is_quarantined_instead_of_raising() -> None:
    """An unencodable live state is replaced by a fresh one; the last stored bytes are kept aside."""
    cache = _cache({b"acme": b'{"n": 1}'})
    cache.get("acme", 0)["bad"] = {1, 2}  # json.dumps cannot encode a set
    cache.mark_dirty("acme", 0)
    assert cache.flush() == {0: {"acme": b"{}"}}
    [q] = cache.take_quarantined()
    assert (q.reason, q.kept) == ("state_unwritable", b'{"n": 1}')
    assert "TypeError" in q.detail


def test_a_state_over_the_size_limit_is_quarantined_not_written() -> None:
    """A state whose encoding exceeds max_state_bytes is never written; a fresh one is, and the event is counted."""
    from prometheus_client import REGISTRY

    count_before = REGISTRY.get_sample_value("preempt_account_state_bytes_count") or 0.0
    cache = StateCache({}, dict, json.loads, lambda s: json.dumps(s).encode(), max_state_bytes=1024)
    cache.get("big", 1)["blob"] = "x" * 2000
    cache.mark_dirty("big", 1)
    cache.get("small", 1)["n"] = 1
    cache.mark_dirty("small", 1)
    assert cache.flush() == {1: {"big": b"{}", "small": b'{"n": 1}'}}
    [q] = cache.take_quarantined()
    assert (q.account_id, q.reason, q.kept) == ("big", "state_too_large", None)
    assert "the limit is 1024" in q.detail
    assert REGISTRY.get_sample_value("preempt_account_state_bytes_count") == count_before + 2


def test_load_during_rebuild_quarantines_instead_of_raising() -> None:
    """The rebuild after recovery reads every state: an unreadable one yields None and a dirty fresh state."""
    cache = _cache({})
    assert cache.load("ok", 0, b'{"n": 1}') == {"n": 1}
    assert cache.load("bad", 3, b"{not json") is None
    assert [q.account_id for q in cache.take_quarantined()] == ["bad"]
    assert cache.flush() == {3: {"bad": b"{}"}}


def test_kept_state_is_cut_to_the_limit_so_its_dead_letter_fits_in_a_record() -> None:
    """An unreadable state bigger than max_state_bytes is kept aside cut to the limit, and says so."""
    cache = StateCache({b"a": b"x" * 5000}, dict, json.loads, json.dumps, max_state_bytes=1024)
    cache.get("a", 0)
    [q] = cache.take_quarantined()
    assert q.kept is not None
    assert len(q.kept) == 1024
    assert "cut to its first 1024 of 5000 bytes" in q.detail


def test_dirty_states_held_across_batches_stay_cached_and_flush_once_each() -> None:
    """States left dirty over several batches (the runtime's write interval) are counted in
    ``dirty``, served from memory (never evicted, even past ``max_clean``) and flushed once each."""
    cache = _cache({}, max_clean=1)
    for batch in range(3):
        for account in ("a", "b"):
            cache.get(account, 0)["n"] = batch
            cache.mark_dirty(account, 0)
    assert cache.dirty == 2
    assert cache.get("a", 0) == {"n": 2}
    assert cache.flush() == {0: {"a": b'{"n": 2}', "b": b'{"n": 2}'}}
    assert cache.dirty == 0


def test_a_partial_flush_writes_the_oldest_dirty_states_and_says_how_far_it_got() -> None:
    """``flush(count)`` serializes the ``count`` states that became dirty first (a state dirtied again
    keeps its place) and leaves the others dirty; ``written_mark`` reaches a batch's ``dirty_mark``
    only once every state dirtied up to that batch is serialized."""
    cache = _cache({})
    for account in ("a", "b"):
        cache.get(account, 0)["n"] = 1
        cache.mark_dirty(account, 0)
    first_batch = cache.dirty_mark
    for account in ("c", "a"):
        cache.get(account, 1)["n"] = 2
        cache.mark_dirty(account, 1)
    second_batch = cache.dirty_mark
    assert (first_batch, second_batch) == (2, 3)
    assert cache.flush(1) == {0: {"a": b'{"n": 2}'}}  # the newest value of the oldest dirty state
    assert cache.written_mark == 1 < first_batch
    assert cache.flush(1) == {0: {"b": b'{"n": 1}'}}
    assert cache.written_mark == first_batch < second_batch
    cache.get("a", 0)["n"] = 3
    cache.mark_dirty("a", 0)  # dirty again after its write: a new mark, behind "c"
    assert cache.flush(1) == {1: {"c": b'{"n": 2}'}}
    assert cache.written_mark == second_batch
    assert cache.dirty == 1
    assert cache.flush() == {0: {"a": b'{"n": 3}'}}
    assert cache.written_mark == cache.dirty_mark == 4
    assert cache.flush(5) == {}


def test_dirty_since_counts_the_states_dirty_since_before_a_time() -> None:
    """``dirty_since`` counts the oldest dirty states: those that became dirty at or before the given time."""
    import time

    cache = _cache({})
    cache.get("a", 0)
    cache.mark_dirty("a", 0)
    between = time.monotonic()
    while time.monotonic() == between:  # the next mark is strictly later
        pass
    cache.get("b", 0)
    cache.mark_dirty("b", 0)
    assert cache.dirty_since(between) == 1
    assert cache.dirty_since(time.monotonic()) == 2
    assert cache.dirty_since(between - 3600) == 0


def test_a_partial_flush_never_evicts_a_state_still_dirty() -> None:
    """Past ``max_clean`` a flush evicts the least recently used clean states only: a state left
    dirty by a partial flush stays in memory and is written from there later."""
    cache = _cache({}, max_clean=1)
    for account in ("a", "b", "c"):
        cache.get(account, 0)["n"] = account
        cache.mark_dirty(account, 0)
    assert cache.flush(1) == {0: {"a": b'{"n": "a"}'}}
    assert len(cache) == 2  # "a" (clean) evicted; "b" and "c" kept, dirty
    assert cache.flush() == {0: {"b": b'{"n": "b"}', "c": b'{"n": "c"}'}}
    assert len(cache) == 1

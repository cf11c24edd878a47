"""How much memory each partition database of a RocksDB table may hold: Faust's defaults, bounded.

Faust opens one RocksDB database per table partition (the rules worker: 4 tables x PREEMPT_TOPIC_PARTITIONS;
the notifier: 2) with a 64 MiB write buffer, up to 3 of them, and a 2 GiB block cache each. A write buffer
(memtable) keeps every write until it is full, so a worker rewriting account states held each byte it wrote
in memory: ``make soak`` measured the rules worker's RSS growing as fast as its write-ahead logs, about
480 MB/h under 40 events/s, with nothing flushed before 64 MiB per partition — bounded only at gigabytes.
:func:`table_options` gives each table Faust's public ``options`` (passed to ``faust.stores.rocksdb.Store``)
from ``PREEMPT_TABLE_WRITE_BUFFER_BYTES`` and ``PREEMPT_TABLE_BLOCK_CACHE_BYTES``; the memory:// store
ignores them.
"""

from __future__ import annotations

from streams.runtime.settings import Settings

# Write buffers per database: one filling while the other is written to a file (RocksDB's minimum for that).
MAX_WRITE_BUFFERS = 2


def table_options(settings: Settings) -> dict[str, int]:
    """A fresh ``options`` mapping for one ``app.Table`` (Faust's RocksDB store pops keys from the one it gets)."""
    return {
        "write_buffer_size": settings.table_write_buffer_bytes,
        "max_write_buffer_number": MAX_WRITE_BUFFERS,
        "block_cache_size": settings.table_block_cache_bytes,
        # used by the python-rocksdb driver only (rocksdict has no compressed cache); bounded the same
        "block_cache_compressed_size": settings.table_block_cache_bytes,
    }

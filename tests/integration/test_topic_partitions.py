"""``ensure_topics`` refuses a partition setting that differs from the existing events topic's."""

from __future__ import annotations

import pytest

from schemas.errors import ConfigError
from streams.runtime.topics import ensure_topics


def test_a_partition_count_other_than_the_topics_is_refused(settings_factory):
    """Topics created with 4 partitions and a worker configured for 12 fail with the fix in the message."""
    ensure_topics(settings_factory(topic_partitions=4))
    ensure_topics(settings_factory(topic_partitions=4))  # same count: idempotent
    with pytest.raises(ConfigError, match="has 4 partitions but PREEMPT_TOPIC_PARTITIONS is 12"):
        ensure_topics(settings_factory(topic_partitions=12))

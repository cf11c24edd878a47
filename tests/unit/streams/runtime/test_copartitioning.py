"""The partition-count verdicts on a source topic and its tables' changelogs."""

from __future__ import annotations

from streams.runtime.copartitioning import copartitioning_problem

CHANGELOGS = {"p-rules-account-state-changelog": 4, "p-rules-partition-clock-changelog": 4}


def test_matching_counts_are_no_problem() -> None:
    """Source, changelogs and setting all at 4: nothing to say."""
    assert copartitioning_problem("p.events", 4, CHANGELOGS, 4) is None


def test_a_fresh_topic_with_another_count_names_the_setting_to_use() -> None:
    """No state yet and a topic made beforehand with 6 partitions: set PREEMPT_TOPIC_PARTITIONS=6."""
    problem = copartitioning_problem("p.events", 6, {}, 12)
    assert problem is not None
    assert problem.startswith("topic p.events has 6 partitions but PREEMPT_TOPIC_PARTITIONS is 12")
    assert "set PREEMPT_TOPIC_PARTITIONS=6" in problem


def test_partitions_added_after_the_state_was_built_are_named_whatever_the_setting() -> None:
    """Changelogs at 4, source at 6: the same line with the setting at 4 or 6, naming both ways out."""
    for configured in (4, 6):
        problem = copartitioning_problem("p.events", 6, CHANGELOGS, configured)
        assert problem is not None
        assert problem.startswith("topic p.events has 6 partitions but the state built from it has 4")
        assert "p-rules-account-state-changelog" in problem
        assert "recreate p.events with 4 partitions" in problem
        assert "PREEMPT_TOPIC_PARTITIONS=6 and replay" in problem
        assert "\n" not in problem


def test_a_source_made_again_with_fewer_partitions_is_not_called_added() -> None:
    """The events topic deleted under a worker and made again with 2 partitions (the state has 4): the line
    says it was made again with fewer, not that partitions were added, and still names both ways out."""
    problem = copartitioning_problem("p.events", 2, CHANGELOGS, 4)
    assert problem is not None
    assert "partitions were added" not in problem
    assert "p.events was made again with fewer partitions" in problem
    assert "recreate p.events with 4 partitions" in problem
    assert "PREEMPT_TOPIC_PARTITIONS=2 and replay" in problem


def test_a_consistent_deployment_with_a_wrong_setting_names_the_setting() -> None:
    """Source and changelogs at 6, setting 4: set PREEMPT_TOPIC_PARTITIONS=6."""
    problem = copartitioning_problem("p.events", 6, {"p-rules-account-state-changelog": 6}, 4)
    assert problem is not None
    assert "set PREEMPT_TOPIC_PARTITIONS=6" in problem


def test_changelogs_that_disagree_are_listed() -> None:
    """One changelog at 4 and one at 6: both named."""
    problem = copartitioning_problem("p.events", 4, {"a-changelog": 4, "b-changelog": 6}, 4)
    assert problem is not None
    assert "a-changelog has 4" in problem
    assert "b-changelog has 6" in problem

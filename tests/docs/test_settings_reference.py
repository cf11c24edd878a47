"""docs/settings.md lists every PREEMPT_* setting with its default and meaning (see tests/docs/settings.py)."""

from __future__ import annotations

from streams.runtime.settings import Settings
from tests.docs import settings


def test_the_reference_table_matches_the_settings() -> None:
    """The generated table is the one the code gives today (a setting added or renamed shows up)."""
    block = settings.block_in(settings.DOC.read_text(encoding="utf-8"))
    assert block is not None, "docs/settings.md lost its generated-table markers"
    assert block == settings.table(), "docs/settings.md drifted: run make docs"


def test_every_setting_says_what_it_does() -> None:
    """Each field of Settings has a description, so each row of the reference has a meaning
    (PREEMPT_TOPIC_REPLICATION, the SMTP and Slack settings and the log settings had none)."""
    assert sorted(name for name, field in Settings.model_fields.items() if not field.description) == []


def test_the_readme_points_at_the_reference() -> None:
    """A newcomer reading the README's settings paragraph finds the whole list."""
    assert "docs/settings.md" in (settings.REPO / "README.md").read_text(encoding="utf-8")

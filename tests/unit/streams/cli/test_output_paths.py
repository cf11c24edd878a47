"""``written_whole``: output files written through a temporary file beside them, renamed only when all are done."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from streams.cli.output_paths import written_whole


def test_files_appear_only_once_the_block_ends_and_nothing_else_is_left(tmp_path: Path) -> None:
    """Inside the block the names hold nothing new (an earlier file stays as it was); at its end each is renamed in."""
    events, accounts = tmp_path / "events.jsonl", tmp_path / "accounts.jsonl"
    events.write_text("old\n")
    with written_whole([events, accounts]) as temporary:
        for path, temp in temporary.items():
            assert temp.parent == tmp_path
            assert temp != path
            temp.write_text(f"new {path.name}\n")
        assert events.read_text() == "old\n"
        assert not accounts.exists()
    assert (events.read_text(), accounts.read_text()) == ("new events.jsonl\n", "new accounts.jsonl\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.jsonl", "events.jsonl"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OSError])
def test_an_interrupted_block_leaves_no_file_and_the_earlier_one_intact(
    tmp_path: Path, interrupt: type[BaseException]
) -> None:
    """A Ctrl-C (or a failure) part-way removes the temporary files: no new file, the earlier one untouched."""
    events, accounts = tmp_path / "events.jsonl", tmp_path / "accounts.jsonl"
    events.write_text("old\n")

    def interrupted() -> None:
        with written_whole([events, accounts]) as temporary:
            temporary[events].write_text("half a hist")
            raise interrupt()

    with pytest.raises(interrupt):
        interrupted()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]
    assert events.read_text() == "old\n"


def test_a_link_is_written_through_and_a_pipe_or_device_directly(tmp_path: Path) -> None:
    """A link stays a link to the new file; a named pipe (like /dev/full or /dev/null) is written as it is, not
    replaced by a regular file."""
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with written_whole([link, pipe]) as temporary:
        assert temporary[pipe] == pipe
        temporary[link].write_text("new\n")
    assert link.is_symlink()
    assert real.read_text() == "new\n"
    assert stat.S_ISFIFO(pipe.stat().st_mode)

"""``streams.runtime.output_files``: an output that is an input, or another output, is named first."""

from __future__ import annotations

from pathlib import Path

from streams.runtime.output_files import clobbering, same_file


def test_an_output_naming_an_input_is_refused_whatever_the_spelling(tmp_path: Path) -> None:
    """The same file through a relative path, a ``./`` prefix or a symbolic link is the input."""
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(events)
    for spelling in (events, tmp_path / "." / "events.jsonl", link):
        problem = clobbering({"--output": spelling}, {"--events": events})
        assert problem is not None
        assert "is also the --events file: writing it would replace the input; choose another file name" in problem


def test_two_outputs_naming_one_new_file_are_refused(tmp_path: Path) -> None:
    """Two outputs that do not exist yet but name one path would overwrite each other."""
    problem = clobbering(
        {"--output": tmp_path / "x.jsonl", "--accounts-output": tmp_path / "sub" / ".." / "x.jsonl"}, {}
    )
    assert problem == (
        f"--output and --accounts-output both name {tmp_path / 'x.jsonl'}: one would overwrite the other; "
        "give each its own file"
    )


def test_distinct_files_stdin_and_options_not_given_pass(tmp_path: Path) -> None:
    """Different files, ``-`` (stdin) and options left out are no problem."""
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    outputs = {"--output": tmp_path / "alerts.jsonl", "--html": None}
    assert clobbering(outputs, {"--events": events, "--accounts": None, "ALERTS": Path("-")}) is None
    assert not same_file(events, tmp_path / "alerts.jsonl")

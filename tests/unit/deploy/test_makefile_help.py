"""`make help`: every documented target on its own aligned line, and no colour codes when not on a terminal."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_make_help_lists_every_target_aligned_without_escape_codes_in_a_pipe() -> None:
    """Piped (a log, CI) the list has no ANSI colour codes, and even the longest target name keeps its column."""
    out = subprocess.run(
        ["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "\x1b[" not in out
    documented = re.findall(r"^([a-zA-Z_-]+):.*## ", (REPO / "Makefile").read_text(), flags=re.MULTILINE)
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == documented
    columns = {len(line) - len(line[2:].split(" ", 1)[1].lstrip()) for line in lines}
    assert len(columns) == 1, lines  # one description column

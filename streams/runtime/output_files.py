"""Whether a command's output file is one of its inputs, or another of its outputs.

``preempt backtest --events ev.jsonl --output ev.jsonl`` replaced the events with the alerts, and
``simulate --output x --accounts-output x`` left only the last file written. Every command that
writes a file asks this before it reads or writes anything (``streams.cli.output_paths`` for the
``streams`` commands, ``alerts.cli.preview`` for ``--html``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# ``-`` means stdin for the inputs, so a user writes it for an output too; the commands that write a
# file print their summary on stdout, and ``-`` made a file named "-" in the current folder.
STDOUT_REFUSED = "- (stdout) is not an output file here (the summary goes to stdout); give a file name"


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same inode when both exist (links too), else the same absolute path."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet (an output still to be made)
        return a.resolve() == b.resolve()


def clobbering(outputs: Mapping[str, Path | None], inputs: Mapping[str, Path | None]) -> str | None:
    """What is wrong when an output (option name → path) is an input or another output; ``None`` when nothing is.

    ``-`` (stdin) among the inputs is no file and never matches.
    """
    given_outputs = [(name, path) for name, path in outputs.items() if path is not None]
    given_inputs = [(name, path) for name, path in inputs.items() if path is not None and str(path) != "-"]
    for position, (name, path) in enumerate(given_outputs):
        for input_name, input_path in given_inputs:
            if same_file(path, input_path):
                return (
                    f"{name} {path} is also the {input_name} file: writing it would replace the input; "
                    "choose another file name"
                )
        for other_name, other_path in given_outputs[position + 1 :]:
            if same_file(path, other_path):
                return (
                    f"{name} and {other_name} both name {path}: one would overwrite the other; give each its own file"
                )
    return None

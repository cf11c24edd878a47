"""A click callback for ``--output``-style options: refuse a file that cannot be written, up front.

A command that replays or generates for minutes must not find out at the end that its output
folder does not exist; the check runs while the options are parsed, before any work.
"""

from __future__ import annotations

import os
from pathlib import Path

import click


def writable_output(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Return ``value`` when its folder exists and is writable; otherwise raise ``BadParameter``."""
    if value is None:
        return None
    folder = value.parent if str(value.parent) else Path()
    if value.is_dir():
        raise click.BadParameter(f"{value} is a folder; give a file name inside it", ctx, param)
    if not folder.is_dir():
        raise click.BadParameter(f"folder {folder} does not exist; create it first (mkdir -p {folder})", ctx, param)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"folder {folder} is not writable", ctx, param)
    return value

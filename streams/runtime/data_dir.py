"""A process's RocksDB folder under ``PREEMPT_DATA_DIR``, made at start, and what it says about the folders of
older versions: the rules worker and the notifier both call :func:`prepared_data_dir` before Faust opens it.

Two older layouts may be on a persistent volume after an upgrade (docs/operations.md, Upgrades and rollbacks):

* ``<app id>@<bootstrap servers>/v1/`` (2026-11-30, before the per-port folders): moved into the first
  process's own folder (``Settings.prepare_app_data_dir``), logged at INFO.
* ``PREEMPT_DATA_DIR/v1/`` (before 2026-11-30 13:57, one folder for every app): no version reads it any more
  (the tables are rebuilt from the changelogs), and nothing said so: its files stayed on the volume, as large
  as the state, until the disk filled. Each start now logs one WARNING naming it, until it is deleted.
"""

from __future__ import annotations

from pathlib import Path

from streams.runtime.logs import get_logger
from streams.runtime.settings import Settings

log = get_logger(__name__)

UNREAD_LAYOUT = (
    "rocksdb files of a version before 2026-11-30 are not read (its tables are rebuilt from the changelogs); "
    "delete the folder to free the disk"
)


def prepared_data_dir(settings: Settings, app_id: str, web_port: int) -> Path:
    """The folder of app ``app_id`` at ``web_port``, with its parents made (Faust makes only the last level);
    logs the files of older layouts it moved there or leaves unread."""
    folder, moved = settings.prepare_app_data_dir(app_id, web_port)
    if moved is not None:
        log.info("rocksdb files of the previous folder layout moved", source=str(moved), folder=str(folder))
    unread = settings.data_dir / "v1"
    if unread.is_dir():
        log.warning(UNREAD_LAYOUT, folder=str(unread))
    return folder

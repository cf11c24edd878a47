"""Settings helpers that other modules build on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.errors import ConfigError
from streams.runtime.settings import Settings


def test_app_data_dir_stays_short_and_distinct_for_many_brokers(tmp_path: Path) -> None:
    """A long bootstrap list gives a folder name of bounded length that still differs per broker set."""
    many = ";".join(f"kafka://broker-{i}.kafka.internal.example.com:9093" for i in range(12))
    one = Settings(data_dir=tmp_path, broker=many).app_data_dir("preempt-rules", 6066)
    moved = Settings(data_dir=tmp_path, broker=many.replace("broker-11", "broker-12"))
    other = moved.app_data_dir("preempt-rules", 6066)
    assert len(one.parent.name) <= 120
    assert one.parent.parent == tmp_path
    assert one != other


def test_bootstrap_servers_drop_each_entrys_faust_scheme_and_nothing_else() -> None:
    """Faust's kafka:// and aiokafka:// schemes are removed per entry (aiokafka:// was left as 'aio…')."""
    settings = Settings(broker=" aiokafka://a.example:9092 ; KAFKA://b.example:9093,c.example:9094 ")
    assert settings.bootstrap_servers == ["a.example:9092", "b.example:9093", "c.example:9094"]
    assert Settings(broker="http://a.example:9092").bootstrap_servers == ["http://a.example:9092"]


def test_log_level_is_case_insensitive_and_a_typo_is_refused() -> None:
    """PREEMPT_LOG_LEVEL takes a level in any case; a name that is not a level is an error, not INFO."""
    assert Settings(log_level=" debug ").log_level == "DEBUG"
    assert Settings(log_level="Warning").log_level == "WARNING"
    assert Settings(log_level="warn").log_level == "WARNING"
    with pytest.raises(ValidationError, match="log_level"):
        Settings(log_level="verbose")


@pytest.mark.parametrize("url", ["notaurl", "slack.com/api/", "ftp://slack.com/api/", "https://", ""])
def test_a_slack_api_url_that_is_no_http_url_is_refused(url: str) -> None:
    """PREEMPT_SLACK_API_URL must be an http(s) URL with a host: a typo was accepted at start and made
    every bot message fail at delivery; the fake Slack server's http://127.0.0.1 URL is fine."""
    with pytest.raises(ValidationError, match="an http\\(s\\) URL with a host"):
        Settings(slack_api_url=url)
    assert Settings(slack_api_url=" http://127.0.0.1:8080/api/ ").slack_api_url == "http://127.0.0.1:8080/api/"
    assert Settings().slack_api_url == "https://slack.com/api/"


def test_two_processes_of_one_app_on_one_machine_get_their_own_data_dirs(tmp_path: Path) -> None:
    """Two workers with the same settings but their own web ports (two on one machine) never share a
    RocksDB folder (RocksDB locks a partition's database for one process); a restart finds its own."""
    settings = Settings(data_dir=tmp_path, broker="kafka://127.0.0.1:9092")
    first, second = settings.app_data_dir("preempt-rules", 6066), settings.app_data_dir("preempt-rules", 6166)
    assert first != second
    assert first.parent == second.parent == tmp_path / "preempt-rules@127.0.0.1_9092"
    assert first.name == "port-6066"
    assert settings.app_data_dir("preempt-rules", 6066) == first


def test_an_upgrade_moves_the_previous_layouts_tables_into_the_first_process_folder(tmp_path: Path) -> None:
    """RocksDB files kept in ``<app>@<brokers>/v1`` (before the per-port folders) move into the first
    process's folder, so a persistent volume keeps them; a second process finds nothing to take."""
    settings = Settings(data_dir=tmp_path, broker="kafka://127.0.0.1:9092")
    legacy = tmp_path / "preempt-rules@127.0.0.1_9092" / "v1" / "tables" / "account-state-0.db"
    legacy.mkdir(parents=True)
    (legacy / "CURRENT").write_text("MANIFEST-000001\n")
    folder, moved = settings.prepare_app_data_dir("preempt-rules", 6066)
    assert moved == tmp_path / "preempt-rules@127.0.0.1_9092" / "v1"
    assert (folder / "v1" / "tables" / "account-state-0.db" / "CURRENT").read_text() == "MANIFEST-000001\n"
    assert not moved.exists()
    other, nothing = settings.prepare_app_data_dir("preempt-rules", 6166)
    assert (other.parent, other.exists(), nothing) == (folder.parent, False, None)
    again, nothing_again = settings.prepare_app_data_dir("preempt-rules", 6066)
    assert (again, nothing_again) == (folder, None)


def test_a_data_dir_that_cannot_be_made_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    """A PREEMPT_DATA_DIR under a file (or read-only, or not this user's) is one ConfigError, not mkdir's traceback."""
    (tmp_path / "a-file").write_text("")
    settings = Settings(data_dir=tmp_path / "a-file" / "data", broker="kafka://127.0.0.1:9092")
    with pytest.raises(ConfigError) as raised:
        settings.prepare_app_data_dir("preempt-rules", 6066)
    assert str(raised.value) == (
        f"PREEMPT_DATA_DIR={tmp_path / 'a-file' / 'data'}: cannot make the folder "
        f"{tmp_path / 'a-file' / 'data' / 'preempt-rules@127.0.0.1_9092'} (Not a directory); "
        "point PREEMPT_DATA_DIR at a folder this user can write"
    )


@pytest.mark.parametrize("field", ["kafka_ssl_ca_file", "smtp_ca_file", "data_dir"])
def test_a_path_setting_this_user_may_not_look_at_is_a_setting_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    """A path in a folder without the x permission is a ValidationError naming it (PREEMPT_… is not valid:
    cannot look at …), not the PermissionError traceback of FilePath's or the data dir's check. (stat is
    faked: root may look anywhere.)"""
    closed = tmp_path / "closed" / "file.pem"
    real_stat = Path.stat

    def stat(self: Path, **kwargs: bool) -> os.stat_result:
        if self == closed:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    with pytest.raises(ValidationError) as raised:
        Settings(**{field: closed})
    assert f"cannot look at {closed}: Permission denied (a folder on the way is closed to this user)" in str(
        raised.value
    )

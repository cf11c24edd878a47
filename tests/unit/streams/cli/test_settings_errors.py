"""Every command reports invalid settings as one line and exit 1, never a traceback or a secret."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streams.cli.main import main


@pytest.mark.parametrize("args", [["worker"], ["notifier"], ["events", "dead-letters"]])
def test_invalid_kafka_security_settings_are_one_line(args: list[str]) -> None:
    """SASL_SSL without credentials stops the command before any connection, naming the missing settings."""
    env = {"PREEMPT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PREEMPT_KAFKA_SASL_PASSWORD": "hunter2-secret"}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [
        "Error: invalid settings: PREEMPT_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs "
        "PREEMPT_KAFKA_SASL_MECHANISM, PREEMPT_KAFKA_SASL_USERNAME"
    ]
    assert "hunter2" not in result.output


def test_invalid_field_names_the_variable() -> None:
    """A field-level error names the PREEMPT_* variable."""
    result = CliRunner().invoke(main, ["worker"], env={"PREEMPT_KAFKA_SASL_MECHANISM": "KERBEROS"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: PREEMPT_KAFKA_SASL_MECHANISM='KERBEROS' is not valid: ")
    assert len(result.output.strip().splitlines()) == 1

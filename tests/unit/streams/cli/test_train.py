"""``preempt train`` from simulated files, then a ``risk`` rule using the model in ``preempt backtest``."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from rules.loader import load_rules
from rules.models import RiskRule
from streams.cli.main import main

START = "2026-01-05T00:00:00Z"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """90 days of 30 simulated accounts with outcomes."""
    root = tmp_path_factory.mktemp("history")
    paths = {name: root / f"{name}.jsonl" for name in ("events", "accounts", "outcomes")}
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--days",
            "90",
            "--accounts",
            "30",
            "--seed",
            "5",
            "--start",
            START,
            "--output",
            str(paths["events"]),
            "--accounts-output",
            str(paths["accounts"]),
            "--outcomes-output",
            str(paths["outcomes"]),
        ],
    )
    assert result.exit_code == 0, result.output
    return paths


def test_train_writes_a_model_that_a_risk_rule_uses(history: dict[str, Path], tmp_path: Path) -> None:
    """The model file is versioned plain data with the vocabulary of the events and the account records, and a
    rule file loads it."""
    model = tmp_path / "models" / "churn.json"
    model.parent.mkdir()
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--events",
            str(history["events"]),
            "--accounts",
            str(history["accounts"]),
            "--outcomes",
            str(history["outcomes"]),
            "--output",
            str(model),
            "--as-of-every",
            "7d",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = orjson.loads(model.read_bytes())
    assert (doc["format"], doc["version"]) == ("preempt-risk-model", 2)
    assert doc["feature_spec"]["version"] == 3
    assert doc["feature_spec"]["account"]["tiers"] == ["enterprise", "growth", "starter"]
    assert {"days_to_renewal", "customer_days", "seat_use_28d", "tier:starter"} <= set(doc["features"])
    assert len(doc["features"]) == len(doc["coef"]) == len(doc["mean"]) == len(doc["scale"])
    terms = {t["event"] for t in doc["feature_spec"]["terms"]}
    assert {"Login", "Feature Used"} <= terms
    assert not any(name.startswith("Subscription ") and name != "Subscription Downgraded" for name in terms)
    assert doc["training"]["events_from"].startswith("2026-01-05")
    assert doc["training"]["samples"] > 0

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "risk.yaml").write_text(
        "id: churn-risk\nkind: risk\ntitle: '{{ account.name }}: churn risk {{ evidence.value }}'\n"
        "severity: high\npriority: 1\nmodel: ../models/churn.json\nthreshold: 0.2\n"
    )
    (rule,) = load_rules(rules).rules
    assert isinstance(rule, RiskRule)
    alerts = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "backtest",
            "--rules",
            str(rules),
            "--events",
            str(history["events"]),
            "--accounts",
            str(history["accounts"]),
            "--output",
            str(alerts),
        ],
    )
    assert result.exit_code == 0, result.output
    fired = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    assert fired, "a low threshold over 30 accounts with churners must fire"
    assert all(a["evidence"]["reasons"] and a["evidence"]["value"] >= 0.2 for a in fired)


def test_bad_as_of_spacing_is_one_line(history: dict[str, Path], tmp_path: Path) -> None:
    """--as-of-every must be whole days; the error is one line."""
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--events",
            str(history["events"]),
            "--outcomes",
            str(history["outcomes"]),
            "--output",
            str(tmp_path / "m.json"),
            "--as-of-every",
            "36h",
        ],
    )
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == ["Error: --as-of-every 36h: give whole days, e.g. 7d"]


def test_as_of_spacing_longer_than_the_history_says_so(history: dict[str, Path], tmp_path: Path) -> None:
    """--as-of-every 100d over 90 days of history leaves no as-of time in it: the refusal blamed --warmup 14d and
    the account ids, neither of which was the cause."""
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--events",
            str(history["events"]),
            "--outcomes",
            str(history["outcomes"]),
            "--output",
            str(tmp_path / "m.json"),
            "--as-of-every",
            "100d",
        ],
    )
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "Error: no samples: --as-of-every 100d leaves no as-of time in the history (90 days, from "
        "2026-01-05 to 2026-04-04): give a shorter spacing, or a longer history"
    )
    assert not (tmp_path / "m.json").exists()


def test_negative_horizon_is_recorded_and_checked(history: dict[str, Path], tmp_path: Path) -> None:
    """--negative-horizon lands in the model's training info; one shorter than --horizon is a one-line error."""
    base = ["train", "--events", str(history["events"]), "--outcomes", str(history["outcomes"]), "--horizon", "30d"]
    model = tmp_path / "m.json"
    result = CliRunner().invoke(main, [*base, "--output", str(model), "--min-lead", "7d", "--negative-horizon", "60d"])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(model.read_bytes())
    assert (doc["training"]["horizon_days"], doc["training"]["negative_horizon_days"]) == (30.0, 60.0)
    assert doc["feature_spec"]["version"] == 2
    assert any(name.startswith("since:") for name in doc["features"])
    result = CliRunner().invoke(main, [*base, "--output", str(model), "--negative-horizon", "20d"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "Error: --negative-horizon 20d must not be shorter than --horizon 30d"
    ]


def test_regularization_is_given_or_chosen_and_recorded(history: dict[str, Path], tmp_path: Path) -> None:
    """--regularization C uses that C (recorded as given); without it cross-validated log loss chooses
    one of the grid; a C that is not a positive number is one line. (And an --event that gives no
    feature is a note.)"""
    base = ["train", "--events", str(history["events"]), "--outcomes", str(history["outcomes"])]
    given, chosen = tmp_path / "given.json", tmp_path / "chosen.json"
    listed = ["--event", "Login", "--event", "Lgoin"]  # a typo in --event is said, not silently featureless
    result = CliRunner().invoke(main, [*base, "--output", str(given), "--regularization", "0.07", *listed])
    assert result.exit_code == 0, result.output
    assert "C=0.07 (given)" in result.output
    assert "note: --event 'Lgoin' gives no feature: no training event has that name" in result.output
    assert "'Login' gives no feature" not in result.output
    training = orjson.loads(given.read_bytes())["training"]
    assert (training["regularization_c"], training["regularization_chosen_by"]) == (0.07, "given")
    result = CliRunner().invoke(main, [*base, "--output", str(chosen)])
    assert result.exit_code == 0, result.output
    training = orjson.loads(chosen.read_bytes())["training"]
    assert training["regularization_chosen_by"] == "cross-validated log loss"
    assert training["regularization_c"] in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
    for bad in ("0", "-1", "nan", "lots"):
        result = CliRunner().invoke(main, [*base, "--output", str(given), "--regularization", bad])
        assert result.exit_code == 2, (bad, result.output)
        assert "Traceback" not in result.output
        assert result.output.strip().splitlines()[-1].startswith("Error: Invalid value for '--regularization'")


def test_outcomes_default_to_the_events_outcome_events(history: dict[str, Path], tmp_path: Path) -> None:
    """Without --outcomes, the Subscription * events of the events file are the labels."""
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--events",
            str(history["events"]),
            "--output",
            str(tmp_path / "m.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads((tmp_path / "m.json").read_bytes())["training"]["accounts"] > 0


def _renamed(history: dict[str, Path], tmp_path: Path) -> Path:
    """The history with every event name replaced (outcomes too) and written by json.dumps (\\u escapes)."""
    import json

    names = {
        "Subscription Cancelled": "Vertrag gekündigt",
        "Subscription Renewed": "Vertrag verlängert",
        "Subscription Contracted": "Vertrag verkleinert",
        "Subscription Expanded": "Vertrag erweitert",
    }
    path = tmp_path / "umbenannt.jsonl"
    with history["events"].open() as source, path.open("w") as out:
        for line in source:
            event = json.loads(line)
            event["event"] = names.get(event["event"], "Ereignis " + event["event"].lower().replace(" ", "-"))
            out.write(json.dumps(event) + "\n")
    return path


def test_train_on_entirely_other_event_names(history: dict[str, Path], tmp_path: Path) -> None:
    """Events and outcome events named unlike the simulator's train a model whose features use those names only."""
    events = _renamed(history, tmp_path)
    model = tmp_path / "m.json"
    outcome_options = [
        "--outcome-event",
        "Vertrag gekündigt=churned",
        "--outcome-event",
        "Vertrag verlängert=renewed",
        "--outcome-event",
        "Vertrag verkleinert=contracted",
        "--outcome-event",
        "Vertrag erweitert=expanded",
    ]
    result = CliRunner().invoke(main, ["train", "--events", str(events), "--output", str(model), *outcome_options])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(model.read_bytes())
    terms = [name.split(":", 1)[1] for name in doc["features"] if ":" in name]
    assert terms
    assert all(term.startswith("Ereignis ") for term in terms), terms  # no outcome event, no simulator name
    assert doc["training"]["churned_accounts"] > 0


def test_only_churn_outcome_events_is_one_line_saying_what_to_give(history: dict[str, Path], tmp_path: Path) -> None:
    """With only the churn event named, the missing retained examples are named in one line, with the fix."""
    events = _renamed(history, tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--events",
            str(events),
            "--output",
            str(tmp_path / "m.json"),
            "--outcome-event",
            "Vertrag gekündigt=churned",
        ],
    )
    assert result.exit_code != 0
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error.startswith("Error: only churned accounts have an outcome")
    assert "--outcome-event 'NAME=renewed'" in error


def test_outcomes_of_other_accounts_is_one_line(history: dict[str, Path], tmp_path: Path) -> None:
    """Outcomes whose account ids are not the events' give no samples: one line saying to check the ids."""
    outcomes = tmp_path / "fremd.jsonl"
    outcomes.write_bytes(
        b"".join(
            orjson.dumps({**orjson.loads(line), "account_id": "fremd-" + orjson.loads(line)["account_id"]}) + b"\n"
            for line in history["outcomes"].read_bytes().splitlines()
        )
    )
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--events",
            str(history["events"]),
            "--outcomes",
            str(outcomes),
            "--output",
            str(tmp_path / "m.json"),
        ],
    )
    assert result.exit_code != 0
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error.startswith("Error: no samples: no account with an outcome has events for longer than --warmup 14d")


def test_output_into_a_missing_folder_is_refused_before_training(history: dict[str, Path], tmp_path: Path) -> None:
    """--output in a folder that does not exist is one line before any work, never a traceback after it."""
    missing = tmp_path / "nope" / "m.json"
    result = CliRunner().invoke(
        main,
        ["train", "--events", str(history["events"]), "--outcomes", str(history["outcomes"]), "--output", str(missing)],
    )
    assert result.exit_code == 2
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error == (
        f"Error: Invalid value for '--output': folder {missing.parent} does not exist; "
        f"create it first (mkdir -p {missing.parent}). Try 'preempt train -h' for help."
    )
    assert "vocabulary" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_accounts_without_an_outcome_are_counted_in_a_note(history: dict[str, Path], tmp_path: Path) -> None:
    """Accounts of --accounts that have no outcome are left out of training, and a note says how many."""
    lines = history["outcomes"].read_bytes().splitlines()
    outcomes = tmp_path / "some.jsonl"
    outcomes.write_bytes(b"\n".join(lines[:-3]) + b"\n")
    accounts = sum(1 for line in history["accounts"].read_bytes().splitlines() if line.strip())
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--events",
            str(history["events"]),
            "--accounts",
            str(history["accounts"]),
            "--outcomes",
            str(outcomes),
            "--output",
            str(tmp_path / "m.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"note: 3 of the {accounts} accounts in {history['accounts']} have no outcome and teach nothing" in (
        result.stderr
    )


def test_a_bad_outcome_event_is_refused_before_scikit_learn_is_loaded(
    history: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--outcome-event 'X=maybe' is one line before the training module (scikit-learn, seconds to import) loads:
    with that module unavailable, the option's error still comes first."""
    import sys

    monkeypatch.setitem(sys.modules, "streams.prescient.training", None)  # importing it raises ImportError
    args = ["train", "--events", str(history["events"]), "--outcomes", str(history["outcomes"])]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "m.json"), "--outcome-event", "X=maybe"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: --outcome-event 'X=maybe': write EVENT NAME=OUTCOME with OUTCOME one of churned, renewed, "
        "contracted, expanded"
    )


def test_outcomes_where_every_account_churned_are_refused(history: dict[str, Path], tmp_path: Path) -> None:
    """An outcomes file holding only churns is one line naming what to give, and no model: its early samples
    would be labelled 'retained', and the model would learn when churners leave rather than which accounts do."""
    churned = tmp_path / "churned.jsonl"
    churned.write_bytes(
        b"".join(
            line + b"\n"
            for line in history["outcomes"].read_bytes().splitlines()
            if orjson.loads(line)["outcome"] == "churned"
        )
    )
    model = tmp_path / "m.json"
    result = CliRunner().invoke(
        main, ["train", "--events", str(history["events"]), "--outcomes", str(churned), "--output", str(model)]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        "Error: only churned accounts have an outcome, and accounts without one teach nothing: give the retained "
        "accounts' outcomes too (an outcomes file, or their renewal events: --outcome-event 'NAME=renewed')"
    ]
    assert not model.exists()


def test_too_few_accounts_to_learn_from_is_one_line(history: dict[str, Path], tmp_path: Path) -> None:
    """Outcomes of one churned and one renewed account give samples of both labels, but a model of two customers
    (cross-validated one against the other) says nothing: one line with the counts, and no model file."""
    lines = history["outcomes"].read_bytes().splitlines()
    churned = next(line for line in lines if orjson.loads(line)["outcome"] == "churned")
    renewed = next(line for line in lines if orjson.loads(line)["outcome"] == "renewed")
    two = tmp_path / "two.jsonl"
    two.write_bytes(churned + b"\n" + renewed + b"\n")
    model = tmp_path / "m.json"
    result = CliRunner().invoke(
        main, ["train", "--events", str(history["events"]), "--outcomes", str(two), "--output", str(model)]
    )
    assert result.exit_code == 1, result.output
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error == (
        "Error: too few examples to learn from: 1 churning and 1 retained account gave samples, and a model "
        "needs at least 3 of each (more accounts with outcomes, or a longer history)"
    )
    assert "Traceback" not in result.output
    assert not model.exists()


def test_the_notes_on_ignored_events_come_before_a_refusal(history: dict[str, Path], tmp_path: Path) -> None:
    """Events out of time order (a file sorted by account) and invalid lines are said before the refusal they cause,
    not only after a model is written: the refusal alone ('no events', 'no churn') would point elsewhere."""
    lines = history["events"].read_bytes().splitlines()
    by_account = tmp_path / "by-account.jsonl"
    by_account.write_bytes(
        b"".join(line + b"\n" for line in sorted(lines, key=lambda b: orjson.loads(b)["account_id"]))
    )
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"not json\n{}\n")
    for events, note in (
        (by_account, " out of time order beyond 5 s ignored, as the engine would"),
        (garbage, "2 invalid event lines skipped (first: line 1)"),
    ):
        result = CliRunner().invoke(
            main,
            ["train", "--events", str(events), "--outcomes", str(history["outcomes"]), "--output", str(tmp_path / "m")],
        )
        assert result.exit_code == 1, result.output
        said = result.stderr.splitlines()
        error = next(i for i, line in enumerate(said) if line.startswith("Error:"))
        assert any(note in line for line in said[:error]), said


def test_outcomes_of_accounts_left_out_of_accounts_are_counted_in_a_note(
    history: dict[str, Path], tmp_path: Path
) -> None:
    """Outcomes of accounts that --accounts does not list are left out of training, and a note says how many (the
    reverse of 'accounts without an outcome'): a truncated accounts export no longer shrinks the training silently."""
    lines = history["accounts"].read_bytes().splitlines()
    accounts = tmp_path / "some-accounts.jsonl"
    accounts.write_bytes(b"".join(line + b"\n" for line in lines[:-3]))
    dropped = sorted(orjson.loads(line)["account_id"] for line in lines[-3:])
    outcomes = len(history["outcomes"].read_bytes().splitlines())
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--events",
            str(history["events"]),
            "--accounts",
            str(accounts),
            "--outcomes",
            str(history["outcomes"]),
            "--output",
            str(tmp_path / "m.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        f"note: 3 of the {outcomes} accounts with an outcome are not in {accounts} and are left out "
        f"(first: {dropped[0]}); --accounts chooses the accounts to learn from"
    ) in result.stderr.splitlines()


def test_an_empty_events_file_is_named_as_empty(tmp_path: Path) -> None:
    """An empty --events file is said to be empty, not 'no outcomes … check --outcomes and --accounts'."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n\n")
    result = CliRunner().invoke(main, ["train", "--events", str(events), "--output", str(tmp_path / "m.json")])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {events}: no events (the file is empty or only blank lines)\n"


@pytest.mark.parametrize("with_outcomes_file", [False, True], ids=["events-only", "outcomes-file"])
def test_no_outcomes_names_the_file_without_them_and_what_to_give(
    history: dict[str, Path], tmp_path: Path, with_outcomes_file: bool
) -> None:
    """No outcome at all names the file that should hold them (the events' or --outcomes) and what to give."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(history["events"].read_bytes().split(b"\n", 20)[0] + b"\n")  # the first events: no outcome yet
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_bytes(b"\n")
    args = ["train", "--events", str(events), "--output", str(tmp_path / "m.json")]
    if with_outcomes_file:
        args += ["--outcomes", str(outcomes)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    if with_outcomes_file:
        assert result.stderr.startswith(f"Error: {outcomes}: no outcomes (an outcomes JSONL, or events JSONL with ")
    else:
        assert result.stderr.startswith(f"Error: {events} holds no outcome event (Subscription Cancelled, ")
        assert "give --outcomes FILE, or name the events that announce an outcome with --outcome-event" in result.stderr


def test_outcomes_without_a_churn_are_refused_before_the_replay(history: dict[str, Path], tmp_path: Path) -> None:
    """Outcomes in which no account churned are one line before the events are read (minutes on a large history),
    not after both passes over them."""
    renewed = [line for line in history["outcomes"].read_bytes().splitlines() if b'"churned"' not in line]
    outcomes = tmp_path / "renewed.jsonl"
    outcomes.write_bytes(b"\n".join(renewed) + b"\n")
    model = tmp_path / "m.json"
    result = CliRunner().invoke(
        main, ["train", "--events", str(history["events"]), "--outcomes", str(outcomes), "--output", str(model)]
    )
    assert result.exit_code == 1, result.output
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: no account churned in the outcomes of {outcomes} ({len(renewed)} accounts")
    assert "vocabulary:" not in result.stderr  # refused before the first pass over the events
    assert not model.exists()


def test_outcomes_of_accounts_without_events_are_counted_in_a_note(history: dict[str, Path], tmp_path: Path) -> None:
    """Outcomes keyed by ids the events do not have (a CRM's) teach nothing: a note says how many and names the
    first, where they were left out without a word."""
    ghosts = [
        orjson.dumps({"account_id": f"crm-{i}", "outcome": "churned", "at": "2026-02-01T00:00:00Z"}) for i in range(4)
    ]
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_bytes(history["outcomes"].read_bytes() + b"\n".join(ghosts) + b"\n")
    total = len(outcomes.read_bytes().splitlines())
    model = tmp_path / "m.json"
    result = CliRunner().invoke(
        main, ["train", "--events", str(history["events"]), "--outcomes", str(outcomes), "--output", str(model)]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"note: 4 of the {total} accounts with an outcome have no event in {history['events']} and teach nothing "
        "(first: crm-0)"
    ) in result.stderr


class _Bar:
    """A stand-in for a tqdm bar that keeps what it was told."""

    def __init__(self, made: list[dict[str, object]], **options: object) -> None:
        self.options = {**options, "done": 0}
        made.append(self.options)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        self.options["done"] = int(self.options["done"]) + n  # type: ignore[call-overload]


def test_both_passes_over_the_events_show_progress_on_a_terminal(
    history: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, a large history gets a bar for the vocabulary pass, one for the samples pass (minutes
    on a real product's year of events) and one for the fit's models; it showed nothing until the model was
    written, and then nothing during the fit."""
    from types import SimpleNamespace

    from streams.cli import progress as progress_module
    from streams.cli import train as train_module

    made: list[dict[str, object]] = []
    monkeypatch.setattr(progress_module, "PROGRESS_MIN_BYTES", 1)
    monkeypatch.setattr(progress_module, "sys", SimpleNamespace(stderr=SimpleNamespace(isatty=lambda: True)))
    monkeypatch.setattr(progress_module, "progress_bar", lambda **options: _Bar(made, **options))
    monkeypatch.setattr(train_module, "progress_bar", lambda **options: _Bar(made, **options))
    args = ["--events", str(history["events"]), "--outcomes", str(history["outcomes"]), "--output", str(tmp_path / "m")]
    result = CliRunner().invoke(main, ["train", *args])
    assert result.exit_code == 0, result.output
    size = history["events"].stat().st_size
    assert [(bar["desc"], bar["total"], bar["done"]) for bar in made] == [
        ("vocabulary", size, size),
        ("samples", size, size),
        ("fit", 25, 25),  # 6 regularizations x 4 folds, and the final model: minutes on a large history
    ]


def test_a_training_too_big_for_the_memory_is_refused_early_in_one_line(
    history: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Estimated from the first pass over the events (accounts, history span, features), a training that would not
    fit in the available memory is one line before the replay, instead of a process the kernel kills an hour on;
    --no-memory-check tries anyway."""
    from streams.cli import train

    monkeypatch.setattr(train, "available_memory", lambda: 100 * 2**20)  # 100 MB
    args = ["train", "--events", str(history["events"]), "--outcomes", str(history["outcomes"])]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "m.json")])
    assert result.exit_code == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert "training would need about" in error[0]
    assert "0.1 GB is available" in error[0]
    assert "30 accounts" in error[0]
    assert "Traceback" not in result.output
    assert "samples:" not in result.stderr  # refused before the replay
    assert not (tmp_path / "m.json").exists()
    checked = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "n.json"), "--no-memory-check"])
    assert checked.exit_code == 0, checked.output


def test_an_empty_accounts_file_is_named_as_empty(history: dict[str, Path], tmp_path: Path) -> None:
    """An empty --accounts file is one line saying so (as preempt backtest says it), not a note that every outcome
    was left out followed by "none of the accounts with an outcome is in it"."""
    empty = tmp_path / "accounts.jsonl"
    empty.write_bytes(b"\n")
    result = CliRunner().invoke(
        main,
        [
            "train",
            *("--events", str(history["events"]), "--outcomes", str(history["outcomes"])),
            *("--accounts", str(empty), "--output", str(tmp_path / "m.json")),
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: {empty}: no accounts: the file is empty or only blank lines; give a JSONL of account records "
        "(`preempt events schema --account`), or leave --accounts out"
    ]


def test_duplicates_and_late_events_follow_the_worker_settings(
    history: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the worker: an event id sent again an hour later is a duplicate within the default day of
    PREEMPT_DEDUP_HORIZON_SECONDS and a new event within half an hour; an event 3 s out of order is in time within
    the default 5 s of PREEMPT_ALLOWED_LATENESS_SECONDS and late within 0 s."""
    lines = history["events"].read_bytes().splitlines()
    first, middle = orjson.loads(lines[0]), orjson.loads(lines[100])
    again = {**first, "timestamp": _shifted(first, 3600)}
    behind = {**middle, "event_id": "three-seconds-behind", "timestamp": _shifted(middle, -3)}
    ordered = sorted([*lines, orjson.dumps(again)], key=lambda line: _shifted(orjson.loads(line), 0))
    at = ordered.index(lines[100]) + 1
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in [*ordered[:at], orjson.dumps(behind), *ordered[at:]]))
    args = ["train", "--events", str(events), "--outcomes", str(history["outcomes"]), "--output", str(tmp_path / "m")]

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 duplicate event (an event id sent again within 86400 s) ignored, as the engine would" in result.stderr
    assert "out of time order" not in result.stderr

    monkeypatch.setenv("PREEMPT_DEDUP_HORIZON_SECONDS", "1800")
    monkeypatch.setenv("PREEMPT_ALLOWED_LATENESS_SECONDS", "0")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "duplicate event" not in result.stderr
    assert "1 event out of time order beyond 0 s ignored, as the engine would" in result.stderr


def _shifted(event: dict[str, str], seconds: float) -> str:
    return (datetime.fromisoformat(event["timestamp"]) + timedelta(seconds=seconds)).isoformat()


def test_the_page_cache_of_the_events_read_is_not_counted_as_memory_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a cgroup v2 memory limit, memory.current counts the page cache of the files read, and the first pass
    reads the whole events file just before the check: the kernel gives that cache back on demand, so the
    inactive part of it (memory.stat's inactive_file, as the kubelet's working set leaves it out) is room too.
    Counted as taken, a 3 GB events file in a 4 GB container refused a training that fits."""
    from streams.cli import train

    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(f"{4 * 2**30}\n")
    (cgroup / "memory.current").write_text(f"{4 * 2**30 - 2**20}\n")  # at the limit: mostly the events' cache
    (cgroup / "memory.stat").write_text(f"anon {400 * 2**20}\nfile {3 * 2**30}\ninactive_file {3 * 2**30}\n")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: {64 * 2**20} kB\nMemAvailable: {60 * 2**20} kB\n")
    monkeypatch.setattr(train, "CGROUP", cgroup)
    monkeypatch.setattr(train, "MEMINFO", meminfo)
    assert train.available_memory() == 3 * 2**30 + 2**20


@pytest.mark.parametrize("swapped", [False, True])
def test_an_outcomes_file_given_as_the_events_is_one_line_saying_so(
    history: dict[str, Path], tmp_path: Path, swapped: bool
) -> None:
    """The outcomes given as --events (alone, or swapped with an events file given as --outcomes) are named as
    such, not "holds no outcome event" nor "every line is an invalid event" after a pass over the other file."""
    outcomes_option = ["--outcomes", str(history["events"])] if swapped else []
    result = CliRunner().invoke(
        main,
        ["train", "--events", str(history["outcomes"]), *outcomes_option, "--output", str(tmp_path / "m.json")],
    )
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: --events {history['outcomes']}: line 1 is an outcome, not an event: "
        "give an outcomes file as --outcomes"
    ]


def test_an_alerts_file_given_as_outcomes_names_no_option_train_lacks(history: dict[str, Path], tmp_path: Path) -> None:
    """preempt train has no --alerts: an alerts file given as --outcomes is named as alerts, without the
    "--alerts and --outcomes swapped?" that preempt evaluate says."""
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(
        orjson.dumps({"alert_id": "x", "rule_id": "r", "account_id": "acc-0001", "fired_at": START}) + b"\n"
    )
    result = CliRunner().invoke(
        main,
        ["train", "--events", str(history["events"]), "--outcomes", str(alerts), "--output", str(tmp_path / "m.json")],
    )
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: {alerts}: line 1 is an alert, not an outcome: give the outcomes (or the events announcing them) "
        "as --outcomes"
    ]


def test_accounts_whose_churn_lies_before_the_history_are_counted_in_a_note(
    history: dict[str, Path], tmp_path: Path
) -> None:
    """An account with events whose churn lies before the history (or before it is --warmup old at an as-of time)
    gives no sample: a note says how many and names the first, where they were left out without a word."""
    lines = [orjson.loads(line) for line in history["outcomes"].read_bytes().splitlines()]
    churned = sorted(o["account_id"] for o in lines if o["outcome"] == "churned")
    early = {**next(o for o in lines if o["account_id"] == churned[0]), "at": "2025-12-01T00:00:00Z"}
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_bytes(
        b"".join(orjson.dumps(early if o["account_id"] == early["account_id"] else o) + b"\n" for o in lines)
    )
    files = ["--events", str(history["events"]), "--outcomes", str(outcomes), "--output", str(tmp_path / "m.json")]
    result = CliRunner().invoke(main, ["train", *files])
    assert result.exit_code == 0, result.output
    note = next(line for line in result.stderr.splitlines() if "give no sample" in line)
    assert note.startswith(
        f"note: 1 of the {len(lines)} accounts with an outcome give no sample and teach nothing "
        f"(first: {early['account_id']}): at no as-of time (every 7d) were they --warmup 14d old"
    )

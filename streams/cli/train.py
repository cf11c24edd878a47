"""``preempt train`` — fit the ``risk`` kind's model from history and outcomes (docs/prescient.md).

scikit-learn and numpy are imported inside the command (``streams.prescient.training``), so the rest
of the CLI and the rules worker never load them; they come with the ``train`` extra
(``pip install 'preempt[train]'``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from rules.backtest import decode_lines, load_accounts
from schemas.account import Account
from schemas.decoder import Rejection
from schemas.event import Event
from schemas.formatting import plural
from schemas.jsonl import read_file
from schemas.outcome import OutcomeKind, Outcomes
from streams.cli.evaluate import load_outcomes, outcome_names, parse_duration_option, refuse_outcomes_as_events
from streams.cli.input_files import rereadable
from streams.cli.output_paths import refuse_overwriting_inputs, writable_output, writing
from streams.cli.progress import file_progress, progress_bar
from streams.runtime.option_types import FiniteFloatRange, InputPath
from streams.runtime.settings import Settings

if TYPE_CHECKING:  # scikit-learn's import takes seconds: the module is imported once options are checked
    from streams.prescient.training import Samples


def _events(
    path: Path, skipped: list[int], seen: set[str] | None = None, span: list[float] | None = None, *, desc: str
) -> Iterator[Event]:
    for number, decoded in decode_lines(file_progress(path, read_file(path), desc)):
        if isinstance(decoded, Rejection):
            skipped.append(number)
            continue
        if seen is not None:
            seen.add(decoded.account_id)
        if span is not None:
            if span:
                span[0], span[1] = min(span[0], decoded.ts), max(span[1], decoded.ts)
            else:
                span += [decoded.ts, decoded.ts]
        yield decoded


BASE_BYTES = 250 * 2**20
"""Python, numpy and scikit-learn loaded, before any account (measured: about 175 MB)."""
STATE_BYTES_PER_ACCOUNT = 120 * 2**10
"""An account's feature state (70 days of buckets) and the rest kept per account (measured on 180-day simulated
histories of 200 and 1,000 accounts: about 95 KB)."""
FIT_COPIES = 2.5
"""The samples' matrix, its copy while the blocks are joined, and the training folds' copies in the fit."""


MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")  # cgroup v2: this process's group (a container's) is mounted here


def available_memory() -> int | None:
    """Bytes this process may still take: MemAvailable, or less under a cgroup limit; None when unknown."""
    available: int | None = None
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        used = int((CGROUP / "memory.current").read_text().strip())
        # memory.current counts the page cache of the files read (the whole events file, just before the check);
        # its inactive part is given back on demand: not taken (the kubelet's working set leaves it out too).
        used -= _inactive_file()
        if limit != "max":
            room = int(limit) - used
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def _inactive_file() -> int:
    """The cgroup's reclaimable page cache (``memory.stat``'s ``inactive_file``); 0 when not known."""
    try:
        for line in (CGROUP / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "inactive_file":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _check_memory(accounts: int, span: list[float], every_s: float, width: int) -> None:
    """Refuse in one line, before the replay, a training that would not fit in memory (rather than be killed
    by the kernel an hour later): the estimate counts the feature state of every account with an outcome and
    events (the others give no sample and keep no state) and, at most, one sample of each at every as-of time."""
    ticks = int((span[1] - span[0]) // every_s) if span else 0
    samples = accounts * max(0, ticks)
    need = BASE_BYTES + accounts * STATE_BYTES_PER_ACCOUNT + samples * (width * 8 * FIT_COPIES + 120)
    available = available_memory()
    if available is not None and need > available:
        raise click.ClickException(
            f"training would need about {need / 2**30:.1f} GB of memory ({accounts:,} accounts, up to {samples:,} "
            f"samples of {width} features) and {available / 2**30:.1f} GB is available: train on fewer accounts "
            "(--accounts), with a longer --as-of-every, or on a larger machine (--no-memory-check: try anyway)"
        )


def _accounts(accounts_path: Path | None) -> dict[str, Account] | None:
    if accounts_path is None:
        return None
    accounts, bad = load_accounts(accounts_path)
    if bad:
        raise click.ClickException(f"{accounts_path}: line {bad[0].line}: {bad[0].reason}")
    if not accounts:  # said as preempt backtest says it, not as "none of the accounts with an outcome is in it"
        raise click.ClickException(
            f"{accounts_path}: no accounts: the file is empty or only blank lines; give a JSONL of account records "
            "(`preempt events schema --account`), or leave --accounts out"
        )
    return accounts


def _restricted(outcomes: Outcomes, accounts: dict[str, Account] | None) -> Outcomes:
    if accounts is None:
        return outcomes
    return Outcomes({a: o for a, o in outcomes.by_account.items() if a in accounts})


def _no_outcomes(
    events_path: Path,
    outcomes_path: Path | None,
    accounts_path: Path | None,
    every_outcome: Outcomes,
    names: dict[str, OutcomeKind],
) -> str:
    """Why there is no outcome to learn from, naming the file that has none and what to give instead."""
    if every_outcome.by_account:  # there were outcomes, but --accounts left every one out (noted above)
        return f"none of the accounts with an outcome is in {accounts_path}; check --accounts against --outcomes"
    if outcomes_path is None:
        return (
            f"{events_path} holds no outcome event ({', '.join(sorted(names))}): give --outcomes FILE, "
            "or name the events that announce an outcome with --outcome-event 'NAME=churned'"
        )
    return (
        f"{outcomes_path}: no outcomes (an outcomes JSONL, or events JSONL with {', '.join(sorted(names))} events); "
        "give the outcomes of the accounts, e.g. preempt simulate --outcomes-output"
    )


def _check_retained(outcomes: Outcomes) -> None:
    """Refuse outcomes in which every account churned: samples long before a churn would be labelled "retained",
    and the model would learn when churners leave, not which accounts do."""
    if all(o.churned for o in outcomes.by_account.values()):
        raise click.ClickException(
            "only churned accounts have an outcome, and accounts without one teach nothing: give the retained "
            "accounts' outcomes too (an outcomes file, or their renewal events: --outcome-event 'NAME=renewed')"
        )


def _check_churned(outcomes: Outcomes, source: Path) -> None:
    """Refuse outcomes without a churn before the replay (minutes on a large history): there is nothing to learn."""
    if not outcomes.churned:
        raise click.ClickException(
            f"no account churned in the outcomes of {source} ({plural(len(outcomes.by_account), 'account')}, "
            "none churned): the model needs churned examples; give their outcomes (an outcomes file, or their "
            "cancellation events: --outcome-event 'NAME=churned')"
        )


def _note_outcomes_without_events(outcomes: Outcomes, seen: set[str], events_path: Path) -> None:
    """Outcomes of accounts that have no event in the history teach nothing: say how many (ids from another system?)."""
    missing = sorted(outcomes.by_account.keys() - seen)
    if missing:
        click.echo(
            f"note: {len(missing)} of the {len(outcomes.by_account)} accounts with an outcome have no event in "
            f"{events_path} and teach nothing (first: {missing[0]}): account ids that differ between the files, or "
            "accounts gone before the history starts",
            err=True,
        )


def _note_outcomes_without_samples(
    outcomes: Outcomes, seen: set[str], samples: Samples, as_of_every: str, warmup: str
) -> None:
    """Accounts with an outcome and events that gave no sample teach nothing either (a churn before the history,
    or an account younger than the warm-up at every as-of time): say how many, as for those without events."""
    given = set(samples.accounts)
    silent = sorted(a for a in outcomes.by_account.keys() & seen if a not in given)
    if silent and samples.first_event_at is not None:
        click.echo(
            f"note: {len(silent)} of the {len(outcomes.by_account)} accounts with an outcome give no sample and teach "
            f"nothing (first: {silent[0]}): at no as-of time (every {as_of_every}) were they --warmup {warmup} old "
            "and not churned yet (a churn before or early in the history, or events that start late)",
            err=True,
        )


def _check_as_of_spacing(samples: Samples, every_s: float, as_of_every: str) -> None:
    """No sample because no as-of time falls in the history (the first is ``every`` after the first midnight)."""
    first, last = samples.first_event_at, samples.last_event_at
    if samples.labels or first is None or last is None:
        return
    if (math.floor(first / 86400) + 1) * 86400 + every_s > last:
        raise click.ClickException(
            f"no samples: --as-of-every {as_of_every} leaves no as-of time in the history "
            f"({round((last - first) / 86400)} days, from {_date(first)} to {_date(last)}): "
            "give a shorter spacing, or a longer history"
        )


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).date().isoformat()


def _check_both_labels(labels: list[int], warmup: str) -> None:
    """One line saying which examples are missing and what to give, before the fit refuses them."""
    positive = sum(labels)
    if not labels:
        raise click.ClickException(
            "no samples: no account with an outcome has events for longer than --warmup "
            f"{warmup} (check that the outcomes' account ids are the events' and the history is long enough)"
        )
    if positive == 0:
        raise click.ClickException(
            "no account churned within --horizon of an as-of time: the model needs churned examples "
            "(check the outcomes, or give a longer --horizon)"
        )


@click.command("train")
@click.option(
    "--events",
    "events_path",
    required=True,
    type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    callback=rereadable,
    help="events JSONL (history)",
)
@click.option(
    "--accounts",
    "accounts_path",
    type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    callback=rereadable,
    help=(
        "accounts JSONL: learn only from these accounts, and from their records too (renewal date, tenure, "
        "seats, MRR, tier, plan); default: every account with an outcome, from events only"
    ),
)
@click.option(
    "--outcomes",
    "outcomes_path",
    type=InputPath(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    callback=rereadable,
    help="outcomes JSONL, or an events JSONL holding outcome events (default: the --events file's outcome events)",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, readable=False, path_type=Path),
    callback=writable_output,
    help="the model file (JSON); its folder must exist",
)
@click.option(
    "--as-of-every",
    "as_of_every",
    metavar="DURATION",
    default="7d",
    show_default=True,
    help="one sample per account this often",
)
@click.option(
    "--horizon",
    metavar="DURATION",
    default="60d",
    show_default=True,
    help="label: churns within this after the as-of time",
)
@click.option(
    "--min-lead",
    metavar="DURATION",
    default="0d",
    show_default=True,
    help="leave out samples closer than this to the churn (train for the warning time you need, e.g. 14d)",
)
@click.option(
    "--negative-horizon",
    metavar="DURATION",
    default=None,
    help="a retained example is one that does not churn for this long (longer than --horizon, e.g. 60d): "
    "samples whose churn lies in between are left out",
)
@click.option(
    "--warmup", metavar="DURATION", default="14d", show_default=True, help="accounts younger than this give no sample"
)
@click.option("--event", "only_events", multiple=True, help="learn only from these event names (repeatable)")
@click.option("--exclude-event", "excluded", multiple=True, help="never use this event name as a feature")
@click.option(
    "--outcome-event",
    "outcome_events",
    multiple=True,
    metavar="NAME=OUTCOME",
    help="event announcing an outcome (repeatable; replaces the Subscription * defaults)",
)
@click.option(
    "--min-account-share",
    type=FiniteFloatRange(0.0, 1.0),
    default=0.05,
    show_default=True,
    help="a term becomes a feature when at least this share of accounts has it",
)
@click.option(
    "--regularization",
    "regularization",
    type=FiniteFloatRange(0.0, None, min_open=True),
    default=None,
    help="the logistic regression's C (smaller: stronger regularization); default: chosen from "
    "0.001-0.3 by grouped cross-validated log loss. Choose it on validation data, never on the data you judge on",
)
@click.option(
    "--memory-check/--no-memory-check",
    default=True,
    show_default=True,
    help="after the first pass over the events, refuse in one line a training estimated not to fit in the "
    "available memory",
)
def train_command(
    events_path: Path,
    accounts_path: Path | None,
    outcomes_path: Path | None,
    output_path: Path,
    as_of_every: str,
    horizon: str,
    min_lead: str,
    negative_horizon: str | None,
    warmup: str,
    only_events: tuple[str, ...],
    excluded: tuple[str, ...],
    outcome_events: tuple[str, ...],
    min_account_share: float,
    regularization: float | None,
    memory_check: bool,
) -> None:
    """Train a churn-risk model for `kind: risk` rules (docs/prescient.md, "preempt train").

    \b
      preempt train --events events.jsonl --accounts accounts.jsonl --outcomes outcomes.jsonl --output model.json
    """
    refuse_overwriting_inputs(
        {"--output": output_path}, {"--events": events_path, "--accounts": accounts_path, "--outcomes": outcomes_path}
    )
    every_s = parse_duration_option(as_of_every, "--as-of-every")
    if not (every_s / 86400).is_integer():
        raise click.ClickException(f"--as-of-every {as_of_every}: give whole days, e.g. 7d")
    horizon_s = parse_duration_option(horizon, "--horizon")
    warmup_s = parse_duration_option(warmup, "--warmup")
    min_lead_s = parse_duration_option(min_lead, "--min-lead", allow_zero=True)
    if min_lead_s >= horizon_s:
        raise click.ClickException(f"--min-lead {min_lead} must be shorter than --horizon {horizon}")
    negative_s = None if negative_horizon is None else parse_duration_option(negative_horizon, "--negative-horizon")
    if negative_s is not None and negative_s < horizon_s:
        raise click.ClickException(
            f"--negative-horizon {negative_horizon} must not be shorter than --horizon {horizon}"
        )
    names = outcome_names(outcome_events)  # before scikit-learn's import, which takes seconds
    settings = Settings()  # the worker's lateness and dedup horizon: the model learns from the events it evaluates
    lateness = settings.allowed_lateness_seconds
    dedup_horizon = max(settings.dedup_horizon_seconds, lateness)  # as preempt backtest keeps it
    if next(read_file(events_path), None) is None:  # a wrong or truncated file, not "no outcomes"
        raise click.ClickException(f"{events_path}: no events (the file is empty or only blank lines)")
    refuse_outcomes_as_events(events_path, "--events")  # before a pass over the other file, or "no outcome event"
    try:
        from streams.prescient import training as risk_training
    except ImportError as exc:
        raise click.ClickException(
            f"training needs scikit-learn ({exc.name} is missing): pip install 'preempt[train]'"
        ) from None
    accounts = _accounts(accounts_path)
    every_outcome = load_outcomes(
        outcomes_path, None if outcomes_path else events_path, names, events_option="--events", alerts_option=None
    )
    outcomes = _restricted(every_outcome, accounts)
    if accounts is not None and len(outcomes.by_account) < len(every_outcome.by_account):
        left_out = sorted(every_outcome.by_account.keys() - accounts.keys())
        click.echo(
            f"note: {len(left_out)} of the {len(every_outcome.by_account)} accounts with an outcome are not in "
            f"{accounts_path} and are left out (first: {left_out[0]}); --accounts chooses the accounts to learn from",
            err=True,
        )
    if not outcomes.by_account:
        raise click.ClickException(_no_outcomes(events_path, outcomes_path, accounts_path, every_outcome, names))
    _check_retained(outcomes)
    _check_churned(outcomes, outcomes_path or events_path)
    if accounts is not None and len(outcomes.by_account) < len(accounts):
        click.echo(
            f"note: {len(accounts) - len(outcomes.by_account)} of the {len(accounts)} accounts in {accounts_path} "
            "have no outcome and teach nothing (an account with no outcome yet is neither churned nor retained)",
            err=True,
        )
    exclude = frozenset(names) | frozenset(excluded)
    skipped: list[int] = []
    seen: set[str] = set()
    span: list[float] = []
    try:
        try:
            spec = risk_training.build_spec(
                _events(events_path, skipped, seen, span, desc="vocabulary"),
                exclude,
                frozenset(only_events) or None,
                min_account_share,
                accounts_file=accounts,
            )
        finally:  # before any refusal: "no events to learn from" in a file of invalid lines must say so
            if skipped:
                click.echo(f"{plural(len(skipped), 'invalid event line')} skipped (first: line {skipped[0]})", err=True)
        _note_outcomes_without_events(outcomes, seen, events_path)
        if memory_check:
            _check_memory(len(outcomes.by_account.keys() & seen), span, every_s, len(spec.names))
        records = f", the account records ({len(spec.tiers)} tiers, {len(spec.plans)} plans)" if accounts else ""
        click.echo(f"vocabulary: {len(spec.terms)} terms, {len(spec.numerics)} numeric properties{records}", err=True)
        learned = {term.event for term in spec.terms} | {numeric.event for numeric in spec.numerics}
        for name in sorted(set(only_events) - learned):
            click.echo(
                f"note: --event {name!r} gives no feature: no training event has that name, or fewer than "
                f"{min_account_share:.0%} of the accounts have it (--min-account-share), or it is an outcome event",
                err=True,
            )
        samples = risk_training.collect_samples(
            spec,
            _events(events_path, [], desc="samples"),
            outcomes,
            horizon_s,
            every_s,
            warmup_s,
            allowed_lateness=lateness,
            min_lead=min_lead_s,
            negative_horizon=negative_s,
            accounts_file=accounts,
            dedup_horizon=dedup_horizon,
        )
        click.echo(f"samples: {len(samples.labels)} ({sum(samples.labels)} positive)", err=True)
        _note_outcomes_without_samples(outcomes, seen, samples, as_of_every, warmup)
        if samples.late:  # before the checks: events out of order are the likeliest cause of a refusal
            click.echo(
                f"{plural(samples.late, 'event')} out of time order beyond {lateness:g} s ignored, as the engine would",
                err=True,
            )
        if samples.duplicates:
            click.echo(
                f"{plural(samples.duplicates, 'duplicate event')} (an event id sent again within "
                f"{dedup_horizon:g} s) ignored, as the engine would",
                err=True,
            )
        _check_as_of_spacing(samples, every_s, as_of_every)
        _check_both_labels(samples.labels, warmup)
        steps = risk_training.fit_steps(samples, regularization)
        with progress_bar(total=steps, desc="fit", unit="model", leave=False) as bar:  # a terminal only
            result = risk_training.fit(samples, len(spec.names), c=regularization, step=lambda: bar.update(1))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    document = risk_training.model_document(
        spec, samples, result, outcomes, horizon_s, every_s, min_lead=min_lead_s, negative_horizon=negative_s
    )
    with writing(output_path):
        output_path.write_bytes(orjson.dumps(document.model_dump(mode="json"), option=orjson.OPT_INDENT_2) + b"\n")
    training = document.training
    click.echo(
        f"trained on {training.samples} samples of {training.accounts} accounts ({training.churned_accounts} churned) "
        f"from {training.events_from} to {training.events_to}; C={training.regularization_c} "
        f"({training.regularization_chosen_by}), "
        f"cross-validated AUC {training.cross_validated_auc}"
    )
    click.echo(f"wrote {output_path} ({len(document.features)} features)")

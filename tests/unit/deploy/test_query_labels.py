"""The shipped alert rules and the dashboard query series and labels that a Preempt process serves.

promtool checks that a query parses, not that its series exist: a metric or a label renamed in
``streams/runtime/metrics.py`` left a rule that never fires (or an ``absent()`` that always does).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from streams.runtime import metrics

REPO = Path(__file__).resolve().parents[3]
# Labels Prometheus attaches to every scraped series (prometheus.yml, prometheus-kubernetes.yml).
TARGET_LABELS = {"job", "instance", "pod"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "summary": ("",)}


def _series_labels() -> dict[str, set[str]]:
    """Every series name a Preempt /metrics page serves → its label names."""
    served: dict[str, set[str]] = {}

    def add(name: str, kind: str, labels: set[str]) -> None:
        for suffix in SUFFIXES.get(kind, ("",)):
            served.setdefault(name + suffix, set()).update(labels | ({"le"} if suffix == "_bucket" else set()))

    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            add(value._name, value._type, set(value._labelnames))
    registries = [REGISTRY]
    for prefix in ("preempt_rules", "preempt_notify"):
        registry = CollectorRegistry()
        FaustMetrics.create(registry, prefix)
        registries.append(registry)
    for registry in registries:
        for family in registry.collect():
            add(family.name, family.type, {k for s in family.samples for k in s.labels})
    # Faust's labelled families have no sample until first used: their labels from the collectors.
    for registry in registries[1:]:
        for collector in registry._collector_to_names:
            if isinstance(collector, MetricWrapperBase):
                add(collector._name, collector._type, set(collector._labelnames))
    return served


SERVED = _series_labels()


def _queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"]
    out = [(f"alerts.yml {r['alert']}", r["expr"]) for g in rules for r in g["rules"]]
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "preempt.json").read_text())
    out += [(f"dashboard {p['title']}", t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    return out


def problems(expr: str, served: dict[str, set[str]]) -> list[str]:
    """The series ``expr`` names that no page serves, and the labels it selects or groups by that none of
    its series has."""
    found = []
    names = set()
    for match in re.finditer(r"\b((?:preempt|process|python)_[a-z_]+)\b(\{[^}]*\})?", expr):
        name, selector = match.group(1), match.group(2) or ""
        names.add(name)
        if name not in served:
            found.append(f"no series {name}")
            continue
        selected = re.findall(r"([a-zA-Z_]+)\s*(?:=~|!~|!=|=)", selector)
        found += [f"{name} has no label {label}" for label in selected if label not in served[name] | TARGET_LABELS]
    # {__name__=~"preempt_(rules|notify)_…"}: the pattern must match a served series
    for pattern in re.findall(r'__name__=~"([^"]+)"', expr):
        if not any(re.fullmatch(pattern, name) for name in served):
            found.append(f"no series matches {pattern}")
        names.update(name for name in served if re.fullmatch(pattern, name))
    have = set().union(*(served.get(n, set()) for n in names)) | TARGET_LABELS
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        found += [f"no series here has label {label}" for label in re.findall(r"\w+", group) if label not in have]
    return found


@pytest.mark.parametrize(("where", "expr"), _queries(), ids=[w for w, _ in _queries()])
def test_each_query_names_served_series_and_labels(where: str, expr: str) -> None:
    """Every series an alert rule or a dashboard panel reads is served, with the labels the query uses."""
    assert problems(expr, SERVED) == []


def test_a_renamed_metric_or_label_is_caught() -> None:
    """The check fails on a series no page serves and on a label its metric does not have."""
    assert problems('sum by (reason) (rate(preempt_events_totl{outcome="late"}[5m]))', SERVED) == [
        "no series preempt_events_totl",
        "no series here has label reason",
    ]
    assert problems('rate(preempt_events_total{reason="late"}[5m])', SERVED) == [
        "preempt_events_total has no label reason"
    ]

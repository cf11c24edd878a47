"""Render the Kubernetes ConfigMaps for rules and routes from the files they ship.

    python deploy/k8s/render_configmaps.py          # rewrite configmap-rules.yaml, configmap-routes.yaml
    python deploy/k8s/render_configmaps.py --check  # exit 1 when either is stale (run by the tests)

The rules ConfigMap holds every YAML file of rules/packs/default (mounted at /etc/preempt/rules);
the routes ConfigMap holds deploy/routes.example.yaml as routes.yaml (mounted at
/etc/preempt/routes). Keeping one source of truth and rendering the copies avoids silent drift.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
RULES_DIR = REPO / "rules" / "packs" / "default"
ROUTES_FILE = REPO / "deploy" / "routes.example.yaml"


class _LiteralDumper(yaml.SafeDumper):
    """Dump multi-line strings as YAML literal blocks, so the ConfigMaps stay readable."""


def _literal_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _literal_str)


def _configmap(name: str, source: str, data: dict[str, str]) -> str:
    header = f"# Rendered by deploy/k8s/render_configmaps.py from {source}; edit the source, then re-run it.\n"
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "preempt"}},
        "data": data,
    }
    return header + yaml.dump(doc, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=10_000)


def _clean(text: str) -> str:
    # Trailing spaces would force YAML's quoted style instead of a readable block.
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def rendered() -> dict[Path, str]:
    """The ConfigMap files as they should be, keyed by path."""
    rules = {
        path.name: _clean(path.read_text(encoding="utf-8"))
        for path in sorted([*RULES_DIR.glob("*.yaml"), *RULES_DIR.glob("*.yml")])
    }
    routes = {"routes.yaml": _clean(ROUTES_FILE.read_text(encoding="utf-8"))}
    return {
        K8S / "configmap-rules.yaml": _configmap("preempt-rules", "rules/packs/default/", rules),
        K8S / "configmap-routes.yaml": _configmap("preempt-routes", "deploy/routes.example.yaml", routes),
    }


def main(argv: list[str] | None = None) -> int:
    """Write the ConfigMaps, or with --check report which are stale (exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(REPO)) for p in stale)
        sys.stderr.write(f"stale: {names}; run python deploy/k8s/render_configmaps.py\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

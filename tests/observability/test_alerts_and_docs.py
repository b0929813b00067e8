"""deploy/alerts.yml is a valid Prometheus rule file over metrics sheetstream exports; docs list every metric."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sheetstream.runtime.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bsheetstream_[a-z0-9_]+")
DURATION = re.compile(r"^\d+[smhd]$")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}
DOC_FORM = {"counter": "_total", "histogram": "", "gauge": ""}
"""How the operations guide names each kind: counters as their `_total` series, the others by family name."""


def _families() -> dict[str, str]:
    return {f.name: f.type for f in REGISTRY.collect() if f.name.startswith("sheetstream_")}


def _series_names() -> set[str]:
    return {name + suffix for name, kind in _families().items() for suffix in SUFFIXES[kind]}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_is_well_formed_and_names_only_exported_series() -> None:
    exported = _series_names()
    rules = _rules()
    assert len(rules) >= 8
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Sheetstream[A-Za-z]+", rule["alert"])
        names = METRIC.findall(rule["expr"])
        assert names, f"{rule['alert']}: its expression uses no sheetstream metric"
        assert set(names) <= exported, f"{rule['alert']}: unknown series {set(names) - exported}"
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert DURATION.match(rule["for"])
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_metric_is_documented_in_the_operations_guide() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    documented = set(METRIC.findall(guide))
    missing = {name for name, kind in _families().items() if (name + DOC_FORM[kind]) not in documented}
    assert not missing, f"docs/operations.md does not list {sorted(missing)}"
    assert documented <= _series_names() | set(_families()), "docs/operations.md names a metric that does not exist"

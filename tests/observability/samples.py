"""Reading metric values: from the in-process registry, or from a server's `/metrics` parsed as Prometheus does."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sheetstream.runtime.metrics import REGISTRY

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def value(name: str, **labels: str) -> float:
    """The current value of one sample of this process's registry (0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def parse(text: str) -> Samples:
    """Every sample of a text exposition, by (name, labels), parsed with prometheus-client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(base_url: str) -> Samples:
    """GET `{base_url}/metrics` and parse it."""
    response = httpx.get(base_url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a labelled series appears at its first increment)."""
    return samples.get((name, frozenset(labels.items())), 0.0)

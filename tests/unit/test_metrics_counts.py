"""The counts behind /_minimo/metrics: histograms bucket as Prometheus's ``le`` does, and the
workers of one gateway add up through their files (tests/test_metrics.py scrapes a real one)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.usecases import metrics


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    hist = metrics.Histogram.empty((0.1, 1.0))
    for value in (0.1, 0.5, 1.0, 7.0):
        hist.observe((0.1, 1.0), value)
    assert hist.counts == [1, 2, 1]
    assert hist.total == pytest.approx(8.6)


def test_counts_survive_their_file_format() -> None:
    counts = metrics.Counts()
    counts.requests[("PutObject", "200")] = 3
    counts.latency[("PutObject",)] = metrics.Histogram([1, 2, 0], 0.5)
    again = metrics.Counts.from_json(json.loads(json.dumps(counts.to_json())))
    assert again == counts


def test_a_scrape_adds_up_every_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.MULTIPROCESS_ENV, str(tmp_path))
    monkeypatch.setattr(metrics, "_counts", metrics.Counts())
    other = metrics.Counts()
    other.requests[("GetObject", "200")] = 5
    other.refusals[("no_session",)] = 2
    (tmp_path / "minimo-1.json").write_text(json.dumps(other.to_json()))
    (tmp_path / "minimo-2.json").write_text("{half a fi")  # being written: skipped
    metrics.observe_request("GetObject", 200, 0.002, 0, 4096)
    metrics.count_refusal("no_session")
    metrics.write_share()
    assert (tmp_path / f"minimo-{os.getpid()}.json").exists()

    class Store:
        async def search_sessions(self, query: object) -> object:
            return type("Page", (), {"total": 0})()

        async def stale_intents(self, older_than: object, limit: int) -> list[object]:
            return []

        async def verify_results(self) -> dict[str, int]:
            return {}

    monkeypatch.setattr(metrics, "_figures", None)
    text = asyncio.run(metrics.exposition(Store())).decode()  # type: ignore[arg-type]
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert found[("minimo_requests_total", (("operation", "GetObject"), ("status", "200")))] == 6
    assert found[("minimo_refusals_total", (("reason", "no_session"),))] == 3
    assert found[("minimo_sent_bytes_total", (("operation", "GetObject"),))] == 4096
    bucket = ("le", "0.0025"), ("operation", "GetObject")
    assert found[("minimo_request_duration_seconds_bucket", bucket)] == 1

"""The lock-free metric families: what a scrape sees must be what prometheus_client's
own metrics would expose (names, cumulative buckets, le labels, exemplars)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from proxy.observe.families import CounterFamily, GaugeFamily, HistogramFamily


def test_counter_gauge_histogram_exposition() -> None:
    reg = CollectorRegistry()
    c = CounterFamily("t_calls", "Calls.", ["route"], registry=reg)
    g = GaugeFamily("t_inflight", "In flight.", ["route"], registry=reg)
    h = HistogramFamily("t_seconds", "Durations.", ["route"], registry=reg, buckets=(0.1, 1.0))
    c.labels("a").inc()
    c.labels("a").inc(2)
    g.labels("a").inc()
    g.labels("a").inc()
    g.labels("a").dec()
    for v, trace in ((0.05, "t1"), (0.1, "t2"), (0.5, None), (7.0, None)):
        h.labels("a").observe(v, {"trace_id": trace} if trace else None)
    assert reg.get_sample_value("t_calls_total", {"route": "a"}) == 3
    assert reg.get_sample_value("t_inflight", {"route": "a"}) == 1
    buckets = {le: reg.get_sample_value("t_seconds_bucket", {"route": "a", "le": le})
               for le in ("0.1", "1.0", "+Inf")}
    assert buckets == {"0.1": 2, "1.0": 3, "+Inf": 4}  # cumulative; le is inclusive
    assert reg.get_sample_value("t_seconds_count", {"route": "a"}) == 4
    assert reg.get_sample_value("t_seconds_sum", {"route": "a"}) == pytest.approx(7.65)
    text = generate_latest(reg).decode()
    assert "# TYPE t_calls_total counter" in text and 't_calls_total{route="a"} 3.0' in text
    om = generate_openmetrics(reg).decode()
    (fam,) = [f for f in text_string_to_metric_families(om) if f.name == "t_seconds"]
    exemplars = {s.labels["le"]: s.exemplar for s in fam.samples if s.name.endswith("_bucket")}
    assert exemplars["0.1"].labels == {"trace_id": "t2"} and exemplars["+Inf"] is None


def test_misuse_is_refused_and_children_can_be_removed() -> None:
    reg = CollectorRegistry()
    c = CounterFamily("t_x", "X.", ["a", "b"], registry=reg)
    with pytest.raises(ValueError):
        c.labels("only-one")
    with pytest.raises(ValueError):
        c.labels("1", "2").inc(-1)
    g = GaugeFamily("t_info", "Info.", ["digest"], registry=reg)
    g.labels("old").set(1)
    g.remove("old")
    g.labels("new").set(1)
    assert reg.get_sample_value("t_info", {"digest": "old"}) is None
    assert reg.get_sample_value("t_info", {"digest": "new"}) == 1
    with pytest.raises(ValueError):  # one name, one collector: duplicates are refused
        CounterFamily("t_x", "X again.", ["a"], registry=reg)

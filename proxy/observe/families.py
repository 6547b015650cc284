"""Counter, gauge and histogram families with plain-float children, exposed through one
prometheus_client collector per family.

prometheus_client's own metrics take a lock per update (a call makes about a dozen) and
validate every exemplar; CallWarden updates its metrics from one event-loop thread, so
an update here is an attribute add. The exposition (text and OpenMetrics, exemplars
included) is still prometheus_client's, from the samples `collect` returns.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

INF = float("inf")


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class GaugeChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class HistogramChild:
    __slots__ = ("bounds", "counts", "exemplars", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # upper bounds, +Inf last
        self.counts = [0] * len(bounds)  # per bucket, not cumulative (summed on collect)
        self.exemplars: list[tuple[dict[str, str], float, float] | None] = [None] * len(bounds)
        """(labels, value, time) per bucket; prometheus_client's Exemplar built on collect."""
        self.sum = 0.0

    def observe(self, value: float, exemplar: dict[str, str] | None = None) -> None:
        i = bisect_left(self.bounds, value)  # le: the first bound >= value
        self.counts[i] += 1
        self.sum += value
        if exemplar is not None:
            self.exemplars[i] = (exemplar, value, time.time())


C = TypeVar("C")


class Family(Generic[C]):
    """One metric name; `labels(*values)` returns the child for those values."""

    kind = ""
    child_type: Any = None

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        if registry is not None:
            registry.register(self)

    def _child(self) -> C:
        return self.child_type()  # type: ignore[no-any-return]

    def labels(self, *values: object) -> C:
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self._labelnames):
                raise ValueError(f"{self._name}: expected labels {self._labelnames}")
            child = self._children[key] = self._child()
        return child

    def remove(self, *values: object) -> None:
        self._children.pop(tuple(str(v) for v in values), None)

    def describe(self) -> list[Metric]:
        return [Metric(self._name, self._documentation, self.kind)]

    def _labelled(self) -> Iterator[tuple[dict[str, str], C]]:
        names = self._labelnames
        for key, child in list(self._children.items()):
            yield dict(zip(names, key, strict=True)), child


class _ScalarFamily(Family[C]):
    """Children holding one value, exposed as `<name><suffix>`."""

    suffix = ""

    def collect(self) -> list[Metric]:
        m = Metric(self._name, self._documentation, self.kind)
        name = self._name + self.suffix
        for labels, child in self._labelled():
            m.add_sample(name, labels, child.value)  # type: ignore[attr-defined]
        return [m]


class CounterFamily(_ScalarFamily[CounterChild]):
    kind = "counter"
    suffix = "_total"
    child_type = CounterChild


class GaugeFamily(_ScalarFamily[GaugeChild]):
    kind = "gauge"
    child_type = GaugeChild


class HistogramFamily(Family[HistogramChild]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        buckets: Sequence[float] = (),
    ) -> None:
        bounds = tuple(sorted(float(b) for b in buckets))
        self._bounds = bounds if bounds and bounds[-1] == INF else (*bounds, INF)
        self._les = tuple(floatToGoString(b) for b in self._bounds)
        super().__init__(name, documentation, labelnames, registry)

    def _child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def collect(self) -> list[Metric]:
        m = Metric(self._name, self._documentation, self.kind)
        name = self._name
        for labels, h in self._labelled():
            total = 0
            for le, count, ex in zip(self._les, h.counts, h.exemplars, strict=True):
                total += count
                exemplar = None if ex is None else Exemplar(*ex)
                m.add_sample(name + "_bucket", {**labels, "le": le}, total, None, exemplar)
            m.add_sample(name + "_count", labels, total)
            m.add_sample(name + "_sum", labels, h.sum)
        return [m]

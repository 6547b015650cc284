"""Circuit breaker state machine, driven by an injected clock."""

from __future__ import annotations

import pytest

from proxy.config.schema import BreakerSpec
from proxy.upstream.breaker import Breaker, BreakerTable, Outcome, State


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(clock: Clock, **kw: object) -> tuple[Breaker, list[tuple[State, State]]]:
    b = Breaker(BreakerSpec(**kw), now=clock)  # type: ignore[arg-type]
    seen: list[tuple[State, State]] = []
    b.on_transition(lambda old, new: seen.append((old, new)))
    return b, seen


def test_opens_after_n_consecutive_failures_only() -> None:
    b, seen = make(Clock(), failures=3, reset_after_s=10)
    for outcome in ("5xx", "timeout", "success", "connect", "5xx"):
        assert b.before_call().allowed
        b.record(outcome)  # type: ignore[arg-type]
    assert b.state is State.CLOSED  # the success broke the run
    b.record("connect")
    assert b.state is State.OPEN
    assert seen == [(State.CLOSED, State.OPEN)]


def test_fails_fast_while_open_with_time_left() -> None:
    clock = Clock()
    b, _ = make(clock, failures=1, reset_after_s=30)
    b.record("5xx")
    clock.t += 12
    d = b.before_call()
    assert not d.allowed and d.state is State.OPEN
    assert d.retry_after_s == pytest.approx(18)
    b.record("success")  # late result of a call admitted before it opened
    assert b.state is State.OPEN


@pytest.mark.parametrize(("probe_outcome", "end"), [("success", State.CLOSED), ("5xx", State.OPEN)])
def test_half_open_probe(probe_outcome: Outcome, end: State) -> None:
    clock = Clock()
    b, seen = make(clock, failures=1, reset_after_s=30)
    b.record("timeout")
    clock.t += 30
    probe = b.before_call()
    assert probe.allowed and probe.probe and probe.state is State.HALF_OPEN
    other = b.before_call()
    assert not other.allowed  # one probe at a time (half_open_probes=1)
    b.record(probe_outcome)
    assert b.state is end
    assert seen == [(State.CLOSED, State.OPEN), (State.OPEN, State.HALF_OPEN),
                    (State.HALF_OPEN, end)]
    if end is State.OPEN:
        assert b.before_call().retry_after_s == pytest.approx(30)  # a full new pause


def test_several_probes_must_all_succeed() -> None:
    clock = Clock()
    b, _ = make(clock, failures=1, reset_after_s=5, half_open_probes=2)
    b.record("5xx")
    clock.t += 5
    assert b.before_call().allowed and b.before_call().allowed
    assert not b.before_call().allowed
    b.record("success")
    assert b.state is State.HALF_OPEN
    b.record("success")
    assert b.state is State.CLOSED


def test_lost_probe_does_not_wedge_half_open() -> None:
    clock = Clock()
    b, _ = make(clock, failures=1, reset_after_s=5)
    b.record("5xx")
    clock.t += 5
    assert b.before_call().probe  # this caller never reports back
    assert not b.before_call().allowed
    clock.t += 6
    assert b.before_call().probe


def test_abandoned_probe_frees_its_slot_at_once() -> None:
    clock = Clock()
    b, _ = make(clock, failures=1, reset_after_s=5)
    b.record("5xx")
    clock.t += 5
    assert b.before_call().probe  # cut by its caller's budget: says nothing
    b.abandon(probe=True)
    assert b.state is State.HALF_OPEN
    assert b.before_call().probe  # the next caller probes without waiting
    b.abandon(probe=False)  # a non-probe call hands back nothing
    assert not b.before_call().allowed


@pytest.mark.parametrize(
    ("failure_on", "outcome", "counts"),
    [
        (None, "connect", True),
        (None, "timeout", True),
        (None, "5xx", True),
        (None, "429", False),
        (None, "client_4xx", False),
        (None, "success", False),
        (["5xx", "429"], "429", True),
        (["5xx", "429"], "timeout", False),
        (["connect", "timeout", "5xx", "429"], "client_4xx", False),
    ],
)
def test_what_counts_as_failure(
    failure_on: list[str] | None, outcome: Outcome, counts: bool
) -> None:
    kw: dict[str, object] = {"failures": 1}
    if failure_on is not None:
        kw["failure_on"] = failure_on
    b, _ = make(Clock(), **kw)
    b.record(outcome)
    assert (b.state is State.OPEN) is counts


def test_ratio_mode_needs_min_calls_and_a_recent_window() -> None:
    clock = Clock()
    b, _ = make(clock, failures=100, failure_ratio=0.5, window_s=10, min_calls=10)
    for i in range(9):
        b.record("5xx" if i % 2 else "success")
    assert b.state is State.CLOSED  # 4/9 failed, and fewer than min_calls
    b.record("5xx")
    assert b.state is State.OPEN  # 5/10


def test_ratio_window_forgets_old_calls() -> None:
    clock = Clock()
    b, _ = make(clock, failures=100, failure_ratio=0.5, window_s=10, min_calls=10)
    for _ in range(9):
        b.record("5xx")
    clock.t += 11  # those failures are out of the window
    for _ in range(9):
        b.record("success")
    b.record("5xx")
    assert b.state is State.CLOSED  # 1/10 failed


def test_per_tenant_isolation() -> None:
    clock = Clock()
    table = BreakerTable(BreakerSpec(failures=2, per_tenant=True), now=clock)
    for _ in range(2):
        table.get("crm", "bad").record("5xx")
    assert not table.get("crm", "bad").before_call().allowed
    assert table.get("crm", "good").before_call().allowed
    assert table.get("other", "bad").before_call().allowed  # routes are separate too


def test_shared_breaker_without_per_tenant() -> None:
    table = BreakerTable(BreakerSpec(failures=2), now=Clock())
    table.get("crm", "a").record("5xx")
    table.get("crm", "b").record("5xx")
    assert table.get("crm", "c").state is State.OPEN
    assert len(table) == 1


def test_tenant_table_bounded_and_keeps_open_breakers() -> None:
    events: list[tuple[tuple[str, str | None], State, State]] = []
    table = BreakerTable(
        BreakerSpec(failures=1, per_tenant=True), now=Clock(), max_tenants=100,
        on_transition=lambda key, old, new: events.append((key, old, new)),
    )
    bad = table.get("crm", "bad")
    bad.record("5xx")
    for i in range(5_000):
        table.get("crm", f"t{i}").record("success")
    assert len(table) == 100
    assert table.get("crm", "bad") is bad and bad.state is State.OPEN
    assert events == [(("crm", "bad"), State.CLOSED, State.OPEN)]
    assert table.evicted_open == 0

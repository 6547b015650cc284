from __future__ import annotations

import pytest

from proxy.model.deadline import make_deadline
from proxy.model.errors import ErrorCode, ProxyError


@pytest.mark.parametrize(
    ("timeout_s", "budget", "phase", "bound", "code", "seconds"),
    [
        (30.0, None, None, False, ErrorCode.TOOL_TIMEOUT, 30.0),
        (30.0, "5000", "plan", True, ErrorCode.PLAN_TIMEOUT, 5.0),
        (30.0, "5000", None, True, ErrorCode.EXECUTE_TIMEOUT, 5.0),
        (30.0, "5000", "Compose", True, ErrorCode.COMPOSE_TIMEOUT, 5.0),
        (2.0, "5000", "plan", False, ErrorCode.TOOL_TIMEOUT, 2.0),
    ],
)
def test_effective_timeout(timeout_s, budget, phase, bound, code, seconds) -> None:
    d = make_deadline(100.0, timeout_s, budget, phase)
    assert d.budget_bound is bound
    assert d.timeout_code is code
    assert d.expires_at == pytest.approx(100.0 + seconds)


# Full-width digits pass str.isdigit(); they must be refused all the same.
@pytest.mark.parametrize("budget", ["-1", "1.5", "abc", " ", "１２", "99999999999"])  # noqa: RUF001
def test_malformed_budget(budget: str) -> None:
    with pytest.raises(ProxyError) as info:
        make_deadline(0.0, 30.0, budget, None)
    assert info.value.code is ErrorCode.TOOL_BAD_REQUEST


def test_bad_phase() -> None:
    with pytest.raises(ProxyError) as info:
        make_deadline(0.0, 30.0, "100", "deploy")
    assert info.value.code is ErrorCode.TOOL_BAD_REQUEST


@pytest.mark.parametrize(
    ("phase", "code"), [("plan", ErrorCode.PLAN_TIMEOUT), (None, ErrorCode.EXECUTE_TIMEOUT)]
)
def test_spent_budget_refused_at_once(phase, code) -> None:
    with pytest.raises(ProxyError) as info:
        make_deadline(0.0, 30.0, "0", phase)
    assert info.value.code is code

"""The cost meter's attribution: scopes, components (with wall seconds), truncation as its own
component.  Pure bookkeeping, no parties: the counts come from ``Meter.add`` as the wrapped
communicator would call it."""

from __future__ import annotations

import time

import pytest

from mpc import meter as mt


@pytest.fixture
def m():
    meter = mt.Meter()
    mt._METER.append(meter)
    yield meter
    mt._METER.remove(meter)


def test_costs_go_to_scope_component_and_truncation(m):
    with mt.scope("layer.0"):
        with mt.component("gelu"):
            m.add(rounds=2, nbytes=100)
            with mt.tag("truncation"):
                m.add(rounds=1, nbytes=10)
        with mt.component("linear"):
            m.add(rounds=1, nbytes=1000, dealer=5)
    r = m.report()
    assert (r["rounds"], r["bytes"], r["dealer_bytes"]) == (4, 1110, 5)
    assert r["per_scope"]["layer.0"]["rounds"] == 4
    assert r["per_component"]["gelu"]["bytes"] == 100
    assert r["per_component"]["truncation"]["bytes"] == 10
    assert r["per_component"]["linear"]["dealer_bytes"] == 5


def test_component_seconds_go_to_the_outermost_block(m):
    with mt.component("head"):
        with mt.component("linear"):
            time.sleep(0.05)
    with mt.component("softmax"):
        time.sleep(0.02)
    r = m.report()["per_component"]
    assert r["head"]["seconds"] >= 0.05
    assert 0.02 <= r["softmax"]["seconds"] < r["head"]["seconds"]
    assert r.get("linear", {"seconds": 0.0})["seconds"] == 0.0  # nested: not counted twice

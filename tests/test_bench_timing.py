"""`sdelab.bench_timing.measure`: the fields every timed bench row stores, checked against a fake clock (the
callables advance it by known amounts, so the medians and spreads are exact; nothing real is timed)."""
import types

import pytest

from sdelab import bench_timing
from sdelab.bench_timing import TIMING_FIELDS, Excluded, measure, timing_details


class FakeClock:
    """perf_counter and process_time that move only when a callable says so (CPU time: half the wall time)."""

    def __init__(self):
        self.now = 0.0

    def advance(self, seconds):
        self.now += seconds

    def perf_counter(self):
        return self.now

    def process_time(self):
        return self.now / 2


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(bench_timing, "time", types.SimpleNamespace(perf_counter=fake.perf_counter,
                                                                    process_time=fake.process_time))
    return fake


def test_median_spread_cpu_and_call_counts(clock):
    calls = {"a": 0, "b": 0}
    durations = {"a": [100.0, 3.0, 1.0, 2.0], "b": [50.0, 10.0, 30.0, 20.0]}  # the first call of each: warm-up

    def make(name):
        def f():
            clock.advance(durations[name][calls[name]])
            calls[name] += 1
            return calls[name]
        return f

    t = measure({"a": make("a"), "b": make("b")}, repeats=3, warmup=1)
    assert calls == {"a": 4, "b": 4}  # 1 warm-up + 3 timed calls each
    assert t["a"]["walls"] == [3.0, 1.0, 2.0] and t["b"]["walls"] == [10.0, 30.0, 20.0]  # warm-up not timed
    assert t["a"]["wall_s"] == 2.0 and t["a"]["wall_spread_s"] == [1.0, 3.0]
    assert t["b"]["wall_s"] == 20.0 and t["b"]["wall_spread_s"] == [10.0, 30.0]
    assert t["a"]["cpu_s"] == 1.0 and t["b"]["cpu_s"] == 10.0  # the fake CPU clock runs at half speed
    assert t["a"]["values"] == [2, 3, 4]
    for entry in t.values():
        lo, hi = entry["wall_spread_s"]
        assert lo <= entry["wall_s"] <= hi
        assert entry["repeats"] == 3 and entry["warmup"] == 1
        assert len(entry["load_avg"]) == 2 and all(v is None or v >= 0 for v in entry["load_avg"])
        assert set(timing_details(entry)) == set(TIMING_FIELDS)


def test_warm_callable_and_excluded_time(clock):
    warm_calls, timed_calls = [], []

    def warm():
        warm_calls.append(1)
        clock.advance(1000.0)

    def timed():
        timed_calls.append(1)
        clock.advance(5.0)
        return Excluded(wall_s=2.0, cpu_s=0.5, value="kept")  # 2 s of the 5 s were evaluation, not timed work

    t = measure({"x": timed}, warm={"x": warm}, repeats=2, warmup=3)["x"]
    assert len(warm_calls) == 3 and len(timed_calls) == 2
    assert t["walls"] == [3.0, 3.0] and t["cpu_s"] == 2.0  # 5 - 2 wall; 2.5 - 0.5 CPU
    assert t["values"] == ["kept", "kept"]


@pytest.mark.parametrize("kwargs, message", [
    ({"fns": {}}, "fns must be"), ({"fns": {"a": 3}}, "fns must be"),
    ({"repeats": 0}, "repeats must be"), ({"warmup": -1}, "warmup must be"), ({"repeats": 1.5}, "repeats must be"),
    ({"warm": {"zz": lambda: None}}, "warm must map"),
])
def test_bad_arguments(kwargs, message):
    kw = {"fns": {"a": lambda: None}, **kwargs}
    with pytest.raises(ValueError, match=message):
        measure(kw.pop("fns"), **kw)

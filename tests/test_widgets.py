import pytest

from sdelab import plot, widgets


def test_explore_static_player_has_one_frame_per_value(monkeypatch):
    monkeypatch.setenv("SDELAB_STATIC", "1")
    seen = []

    def draw(fig, a, b):
        seen.append((a, b))
        fig.add_subplot().plot([0, 1], [0, a * b])

    html = widgets.explore(draw, {"a": [1, 2, 3], "b": [10, 20, 30]})
    text = html.data
    assert "<script" in text and "anim" in text.lower()
    assert sorted({a for a, _ in seen}) == [1, 2, 3]
    assert {b for _, b in seen} == {20}  # others held at their middle value


def test_explore_rejects_bad_params():
    with pytest.raises(ValueError, match="non-empty"):
        widgets.explore(lambda fig, **k: None, {"a": []}, live=False)
    with pytest.raises(ValueError, match="sweep"):
        widgets.explore(lambda fig, **k: None, {"a": [1]}, sweep="z", live=False)


def test_live_kernel_false_outside_kernel(monkeypatch):
    monkeypatch.delenv("SDELAB_STATIC", raising=False)
    assert widgets.live_kernel() is False


def test_animate_returns_html_player():
    html = plot.animate(lambda fig, i: fig.add_subplot().plot([0, i]), 3)
    assert "<script" in html.data


def test_explore_live_builds_one_slider_per_parameter(monkeypatch):
    import ipywidgets

    made = {}

    def fake_interact(fn, **sliders):
        made.update(sliders)
        fn(**{k: s.value for k, s in sliders.items()})  # what a slider change does

    monkeypatch.setattr(ipywidgets, "interact", fake_interact)
    calls = []
    out = widgets.explore(lambda fig, a, b: calls.append((a, b)), {"a": [1, 2, 3], "b": [4, 5]}, live=True)
    assert out is None
    assert set(made) == {"a", "b"} and all(isinstance(s, ipywidgets.SelectionSlider) for s in made.values())
    assert list(made["a"].options) == [1, 2, 3] and calls == [(2, 5)]

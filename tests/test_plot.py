import base64
import json
import re

import pytest

from sdelab import plot


def _frames(html: str) -> list[bytes]:
    blob = re.search(r'<script type="application/json" class="sdelab-frames">(.*?)</script>', html, re.S).group(1)
    return [base64.b64decode(f) for f in json.loads(blob)]


def test_animate_player_is_offline_light_and_has_one_frame_per_step():
    html = plot.animate(lambda fig, i: fig.add_subplot().plot([0, 1], [0, i]), 5, figsize=(4.0, 3.0)).data
    frames = _frames(html)
    assert len(frames) == 5 and all(f[:4] == b"RIFF" and f[8:12] == b"WEBP" for f in frames)
    assert len(set(frames)) == 5  # each frame drawn anew
    assert 'max="4"' in html and 'width="400"' in html and "anim_step" in html
    assert "http" not in html  # no stylesheet, font or script from the network
    assert len(html) < 5 * 40_000


def test_animate_without_html_gives_the_matplotlib_animation():
    from matplotlib.animation import FuncAnimation

    assert isinstance(plot.animate(lambda fig, i: None, 2, html=False), FuncAnimation)


def test_player_rejects_bad_input():
    with pytest.raises(ValueError, match="n_frames"):
        plot.animate(lambda fig, i: None, 0)
    with pytest.raises(ValueError, match="frames"):
        plot.player_html([], width=100)


def test_style_fonts_readable_when_a_7in_figure_fills_the_784px_column():
    plot.style()
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties

    px_per_pt = 784 / (7 * 72)
    legend_pt = FontProperties(size=plt.rcParams["legend.fontsize"]).get_size_in_points()
    tick_pt = FontProperties(size=plt.rcParams["xtick.labelsize"]).get_size_in_points()
    assert legend_pt * px_per_pt >= 9 and tick_pt * px_per_pt >= 9
    assert plt.rcParams["savefig.facecolor"] == "white"

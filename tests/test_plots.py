"""Figures that say what they show: colour scales, colouring rules, group names, and the
inline output people (interactive) and GitHub (headless PNG) each get."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib import config as C
from lib import plots
from lib.ids import IdMap


def test_similarity_heatmap_is_centred_on_zero_when_values_change_sign():
    sim = pd.DataFrame([[1.0, -0.2, 0.5], [-0.2, 1.0, 0.1], [0.5, 0.1, 1.0]],
                       index=list("abc"), columns=list("abc"))
    fig, inter = plots.heatmap(sim, "t", kind="similarity")
    image = fig.axes[0].images[0]
    assert image.get_cmap().name == "RdBu_r"
    assert image.get_clim() == (-0.5, 0.5)  # symmetric: 0 is the white middle
    assert np.ma.is_masked(image.get_array()[0, 0])  # the diagonal (1 by definition) is blank
    assert inter.layout.coloraxis.cmid == 0


def test_all_positive_similarities_and_counts_get_a_sequential_scale():
    sim = pd.DataFrame([[1.0, 0.2], [0.2, 1.0]], index=list("ab"), columns=list("ab"))
    fig, _ = plots.heatmap(sim, "t", kind="similarity")
    assert fig.axes[0].images[0].get_cmap().name == "viridis"
    assert fig.axes[0].images[0].get_clim() == (0.0, 0.2)
    counts = pd.DataFrame([[0, 3], [3, 0]], index=list("ab"), columns=list("ab"))
    fig, _ = plots.heatmap(counts, "t", kind="count")
    assert fig.axes[0].images[0].get_clim() == (0.0, 3.0)
    with pytest.raises(ValueError, match="kind must be"):
        plots.heatmap(counts, "t", kind="diverging")


def test_movies_are_coloured_by_their_most_specific_genre():
    genres = pd.Series([["Animation", "Children's", "Comedy"], ["Comedy"], ["Comedy"],
                        ["Drama", "Romance"], ["Drama"], ["Drama"], ["Drama", "Comedy"], []])
    # Catalogue counts: Comedy 4, Drama 4, Animation 1, Children's 1, Romance 1; ties go to
    # the name, so Drama|Comedy is Comedy. Colour groups: Comedy 3, Drama 2, then Animation
    # and Romance 1 each: with 3 colours Animation keeps one (by name), Romance is "other".
    colour = plots.colour_genre(genres, n_colours=3)
    assert list(colour) == ["Animation", "Comedy", "Comedy", "other", "Drama", "Drama",
                            "Comedy", "other"]
    assert plots.colour_genre(genres, n_colours=4)[3] == "Romance"


def test_user_groups_are_named_by_lifts_above_one_of_common_genres():
    rng = np.random.default_rng(0)
    n_movies = 40
    genres = ["Horror", "Comedy", "unknown"]
    movies = pd.DataFrame({C.MOVIE_COL: np.arange(1, n_movies + 1),
                           C.GENRES_COL: [["Horror"]] * 20 + [["Comedy"]] * 19 + [["unknown"]]})
    # Users 1-10 rate 8 horror movies and the one "unknown" movie; users 11-20 rate 8
    # comedies.
    rows = [(u, m) for u in range(1, 11) for m in rng.choice(20, 8, replace=False) + 1]
    rows += [(u, m) for u in range(11, 21) for m in rng.choice(19, 8, replace=False) + 21]
    rows += [(u, 40) for u in range(1, 11)]
    ratings = pd.DataFrame(rows, columns=[C.USER_COL, C.MOVIE_COL])
    ids = IdMap(np.arange(1, 21), movies[C.MOVIE_COL].to_numpy(), genres)
    vectors = np.repeat([[1.0, 0.0], [0.0, 1.0]], 10, axis=0) + rng.normal(0, 0.01, (20, 2))
    names, table = plots.describe_user_groups(vectors, ratings, None, movies, genres, ids,
                                              n_groups=2)
    # Horror: 80 of 170 ratings overall, 80 of 90 in its group, lift (80/90)/(80/170) = 1.89;
    # "unknown" has the same lift there but one movie, too few to name a group by.
    # Comedy: 80 of 80 in its group, lift 170/80 = 2.125. Nothing else is above 1.
    assert set(table.index) == {"Horror ×1.9", "Comedy ×2.1"}
    assert list(names[:10]) == ["Horror ×1.9"] * 10
    assert table.loc["Horror ×1.9", "genres rated more than average (lift)"] == "Horror ×1.89"


@pytest.mark.parametrize("headless, plotly", [("1", False), ("0", True)])
def test_publish_shows_plotly_inline_only_to_a_person(monkeypatch, tmp_path, headless, plotly):
    import IPython.display
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    monkeypatch.setattr(C, "FIGURES_DIR", tmp_path)
    monkeypatch.setenv(C.HEADLESS_ENV, headless)
    fig, inter = plots.rating_distribution(pd.DataFrame({C.RATING_COL: [1.0, 4.0, 4.0]}))
    plots.publish("stars", "tiny", fig, inter)
    bundle = shown[0]
    assert "image/png" in bundle  # what GitHub shows
    assert ("application/vnd.plotly.v1+json" in bundle) is plotly
    assert "figures" not in bundle["text/plain"]
    assert (tmp_path / "tiny" / "stars.png").is_file()
    assert (tmp_path / "tiny" / "stars.html").is_file()
    assert "stars.html" in shown[1].data and "written each time the notebook runs" in shown[1].data

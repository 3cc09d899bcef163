"""Figures: each as a static PNG (matplotlib) and an interactive HTML page (plotly).

Figures go to ``figures/<dataset>/``; the HTML pages share one local copy of plotly.js
written beside them, so they open with no internet.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from lib import config as C


def figure_dir(dataset: str) -> Path:
    folder = C.FIGURES_DIR / dataset
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save(name: str, dataset: str, fig=None, interactive: go.Figure | None = None) -> dict:
    """Write `fig` as ``<name>.png`` and `interactive` as ``<name>.html``; return the paths."""
    folder = figure_dir(dataset)
    written = {}
    if fig is not None:
        fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        written["png"] = folder / f"{name}.png"
    if interactive is not None:
        interactive.write_html(folder / f"{name}.html", include_plotlyjs="directory",
                               full_html=True)
        written["html"] = folder / f"{name}.html"
    return written


def link(paths: dict) -> None:
    """Show a link to an interactive page in the notebook."""
    from IPython.display import Markdown, display
    if "html" in paths:
        shown = C.shown(paths["html"])
        href = f"../{shown}" if not Path(shown).is_absolute() else Path(shown).as_uri()
        display(Markdown(f"Interactive version: [{shown}]({href})"))


# --- exploration -----------------------------------------------------------------------

def rating_distribution(ratings: pd.DataFrame):
    counts = ratings[C.RATING_COL].value_counts().sort_index()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(counts.index.astype(str), counts.to_numpy(), color="#4C72B0")
    ax.set(xlabel="stars", ylabel="ratings", title="Rating distribution")
    inter = px.bar(x=counts.index.astype(str), y=counts.to_numpy(),
                   labels={"x": "stars", "y": "ratings"}, title="Rating distribution")
    return fig, inter


def activity(ratings: pd.DataFrame):
    """Ratings per user and per movie, as rank plots on log axes (long tails show as lines)."""
    per_user = np.sort(ratings.groupby(C.USER_COL).size().to_numpy())[::-1]
    per_movie = np.sort(ratings.groupby(C.MOVIE_COL).size().to_numpy())[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, values, who in ((axes[0], per_user, "user"), (axes[1], per_movie, "movie")):
        ax.loglog(np.arange(1, len(values) + 1), values)
        ax.set(xlabel=f"{who} rank", ylabel="ratings", title=f"Ratings per {who}")
        ax.grid(True, which="major", alpha=0.3)
    inter = go.Figure()
    for values, who in ((per_user, "user"), (per_movie, "movie")):
        inter.add_trace(go.Scatter(x=np.arange(1, len(values) + 1), y=values, name=f"per {who}"))
    inter.update_xaxes(type="log", title="rank")
    inter.update_yaxes(type="log", title="ratings")
    inter.update_layout(title="Ratings per user and per movie")
    return fig, inter


def genre_counts(movies: pd.DataFrame, genres: list[str]):
    counts = movies[C.GENRES_COL].explode().value_counts().reindex(genres).fillna(0)
    counts = counts.sort_values()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.barh(counts.index, counts.to_numpy(), color="#55A868")
    ax.set(xlabel="movies", title="Movies per genre")
    inter = px.bar(x=counts.to_numpy(), y=counts.index, orientation="h",
                   labels={"x": "movies", "y": "genre"}, title="Movies per genre")
    return fig, inter


def heatmap(matrix: pd.DataFrame, title: str, cmap: str = "viridis", fmt: str = "{:.0f}"):
    """A labelled square heatmap (genre x genre), static and interactive."""
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(matrix.to_numpy(), cmap=cmap)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=90)
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    inter = px.imshow(matrix, title=title, color_continuous_scale=cmap.capitalize()
                      if cmap in ("viridis", "cividis") else "RdBu_r")
    return fig, inter


def demographics(users: pd.DataFrame):
    order = {C.AGE_LABEL_COL: list(C.AGE_LABELS.values())}
    columns = [C.GENDER_COL, C.AGE_LABEL_COL, C.OCCUPATION_LABEL_COL]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 2, 4]})
    frames = []
    for ax, col in zip(axes, columns):
        counts = users[col].value_counts()
        counts = counts.reindex([o for o in order.get(col, counts.index) if o in counts.index])
        ax.bar(counts.index.astype(str), counts.to_numpy(), color="#8172B2")
        ax.set_title(col.replace("_label", ""))
        ax.tick_params(axis="x", rotation=90 if col != C.GENDER_COL else 0)
        frames.append(pd.DataFrame({"value": counts.index.astype(str), "users": counts.to_numpy(),
                                    "field": col.replace("_label", "")}))
    inter = px.bar(pd.concat(frames), x="value", y="users", facet_col="field",
                   title="Users by gender, age and occupation")
    inter.update_xaxes(matches=None)
    return fig, inter


def ratings_over_time(ratings: pd.DataFrame):
    months = pd.to_datetime(ratings[C.TIMESTAMP_COL], unit="s").dt.to_period("M")
    counts = months.value_counts().sort_index()
    x = counts.index.to_timestamp()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(x, counts.to_numpy(), marker=".")
    ax.set(ylabel="ratings per month", title="Ratings over time")
    inter = px.line(x=x, y=counts.to_numpy(), labels={"x": "month", "y": "ratings"},
                    title="Ratings per month")
    return fig, inter

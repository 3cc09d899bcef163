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
from lib.data import genre_matrix


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


def training_curves(history: pd.DataFrame, columns: list[str], title: str):
    """One panel per metric over epochs (columns missing from `history` are skipped)."""
    columns = [c for c in columns if c in history.columns]
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3), squeeze=False)
    for ax, col in zip(axes[0], columns):
        ax.plot(history["epoch"], history[col], marker=".")
        ax.set(xlabel="epoch", title=col)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    long = history.melt(id_vars="epoch", value_vars=columns, var_name="metric")
    inter = px.line(long, x="epoch", y="value", facet_col="metric", markers=True, title=title)
    inter.update_yaxes(matches=None)
    return fig, inter


# --- embeddings ------------------------------------------------------------------------

def reduce_2d(vectors: np.ndarray, method: str = "tsne", *, seed: int = C.SEED,
              pca_dims: int = 50, cache_dir: Path | None = None) -> np.ndarray:
    """2-D coordinates of `vectors` by PCA or t-SNE (scikit-learn; PCA to `pca_dims` first).

    With `cache_dir`, results are kept keyed by a hash of the vectors, the method and the
    seed, so a rerun on the same embeddings is instant.
    """
    import hashlib

    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    key = hashlib.sha1(vectors.tobytes() + f"{method}-{seed}-{pca_dims}".encode()).hexdigest()
    path = None if cache_dir is None else Path(cache_dir) / f"{method}-{key[:16]}.npy"
    if path is not None and path.is_file():
        return np.load(path)
    if method == "pca":
        coords = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    elif method == "tsne":
        reduced = vectors
        if vectors.shape[1] > pca_dims:
            reduced = PCA(n_components=pca_dims, random_state=seed).fit_transform(vectors)
        perplexity = float(min(30, max(2, (len(vectors) - 1) // 3)))
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                      n_jobs=1).fit_transform(reduced)
    else:
        raise ValueError("method must be 'tsne' or 'pca'")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, coords)
    return coords


def _genre_lists(movies_df: pd.DataFrame, color_column: str) -> pd.Series:
    col = movies_df[color_column]
    return col.map(lambda g: g if isinstance(g, list) else str(g).split("|"))


def embedding_map(embedded_df: pd.DataFrame, movies_df: pd.DataFrame, title: str, *,
                  color_column: str = C.GENRES_COL, method: str = "tsne",
                  seed: int = C.SEED, cache_dir: Path | None = None):
    """Movies in 2-D, coloured by primary (first) genre; movies with several genres drawn
    as triangles, single-genre ones as dots. Hover shows title, year and all genres."""
    coords = reduce_2d(embedded_df.to_numpy(), method, seed=seed, cache_dir=cache_dir)
    movies = movies_df.set_index(C.MOVIE_COL).loc[embedded_df.index]
    genres = _genre_lists(movies.reset_index(), color_column).to_numpy()
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1],
                          "primary genre": [g[0] if g and g[0] else "none" for g in genres],
                          "genres": ["|".join(g) for g in genres],
                          "several genres": [len(g) > 1 for g in genres],
                          "title": movies[C.TITLE_COL].to_numpy(),
                          "year": movies[C.YEAR_COL].astype("float").to_numpy()})
    order = frame["primary genre"].value_counts().index
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(8.5, 7))
    for i, genre in enumerate(order):
        part = frame[frame["primary genre"] == genre]
        for several, marker in ((False, "o"), (True, "^")):
            sub = part[part["several genres"] == several]
            ax.scatter(sub["x"], sub["y"], s=7, marker=marker, color=cmap(i % 20), alpha=0.7,
                       label=genre if not several else None, linewidths=0)
    ax.set_title(f"{title} ({method.upper() if method == 'pca' else 't-SNE'}); "
                 "triangles: several genres")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2.5, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    inter = px.scatter(frame, x="x", y="y", color="primary genre", symbol="several genres",
                       hover_data={"title": True, "year": True, "genres": True, "x": False,
                                   "y": False}, category_orders={"primary genre": list(order)},
                       title=title)
    inter.update_traces(marker={"size": 5})
    return fig, inter


def neighbour_genre_agreement(coords: np.ndarray, genre_matrix: np.ndarray,
                              seed: int = C.SEED) -> dict[str, float]:
    """A number for "the picture is right": how often a movie's nearest neighbour in the
    2-D map shares a genre with it, against how often a random movie does (chance)."""
    from sklearn.neighbors import NearestNeighbors
    nn = NearestNeighbors(n_neighbors=2).fit(coords)
    neighbour = nn.kneighbors(coords, return_distance=False)[:, 1]
    g = genre_matrix.astype(bool)
    agree = (g & g[neighbour]).any(axis=1).mean()
    rng = np.random.default_rng(seed)
    other = rng.integers(0, len(g), size=len(g))
    chance = (g & g[other]).any(axis=1).mean()
    return {"neighbour_shares_genre": float(agree), "chance": float(chance)}


def pca_variance(vectors: np.ndarray, title: str, n: int = 10):
    """Explained variance of the first `n` principal components."""
    from sklearn.decomposition import PCA
    pca = PCA(n_components=min(n, *vectors.shape)).fit(vectors)
    ratio = pca.explained_variance_ratio_
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(np.arange(1, len(ratio) + 1), ratio, color="#4C72B0", label="component")
    ax.plot(np.arange(1, len(ratio) + 1), np.cumsum(ratio), "k.-", label="cumulative")
    ax.set(xlabel="principal component", ylabel="share of variance", title=title)
    ax.legend()
    inter = px.bar(x=np.arange(1, len(ratio) + 1), y=ratio, title=title,
                   labels={"x": "component", "y": "share of variance"})
    return fig, inter, ratio


def labelled_map(vectors: np.ndarray, labels: list[str], title: str, sizes=None):
    """Few points (genres) in 2-D by PCA, each with its name."""
    from sklearn.decomposition import PCA
    coords = PCA(n_components=2).fit_transform(vectors)
    sizes = np.full(len(labels), 60.0) if sizes is None else 20 + 300 * sizes / sizes.max()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    ax.scatter(coords[:, 0], coords[:, 1], s=sizes, alpha=0.6, color="#DD8452")
    for (x, y), label in zip(coords, labels):
        ax.annotate(label, (x, y), fontsize=8, ha="center", va="bottom")
    ax.set(title=title, xticks=[], yticks=[])
    inter = px.scatter(x=coords[:, 0], y=coords[:, 1], text=labels, size=sizes, title=title)
    inter.update_traces(textposition="top center")
    return fig, inter


def user_map(coords: np.ndarray, frame: pd.DataFrame, color: str, title: str,
             order: list | None = None):
    """Users in 2-D coloured by one column of `frame` (a demographic or a group)."""
    values = frame[color].astype(str)
    order = order or sorted(values.unique())
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for i, v in enumerate(order):
        mask = (values == v).to_numpy()
        ax.scatter(coords[mask, 0], coords[mask, 1], s=5, alpha=0.6, color=cmap(i % 10),
                   label=v, linewidths=0)
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    inter = px.scatter(frame.assign(x=coords[:, 0], y=coords[:, 1], **{color: values}), x="x",
                       y="y", color=color, category_orders={color: order},
                       hover_data=list(frame.columns), title=title)
    inter.update_traces(marker={"size": 4})
    return fig, inter


def describe_user_groups(user_vectors: np.ndarray, ratings: pd.DataFrame,
                         users: pd.DataFrame | None, movies: pd.DataFrame, genres: list[str],
                         ids, n_groups: int = 6, seed: int = C.SEED):
    """Cluster users by their vectors (k-means) and describe each group: size, the genres
    it rates more than everyone does (lift), and its demographics.

    Returns:
        ``(labels, table)``: the group of every user row, and one row per group.
    """
    from sklearn.cluster import KMeans
    labels = KMeans(n_clusters=n_groups, n_init=10, random_state=seed).fit_predict(user_vectors)
    g = pd.DataFrame(genre_matrix(movies, genres), index=movies[C.MOVIE_COL], columns=genres)
    per_rating = g.loc[ratings[C.MOVIE_COL]].to_numpy(dtype=float)
    group_of_rating = labels[ids.user_rows(ratings[C.USER_COL].to_numpy())]
    overall = per_rating.mean(axis=0)
    rows = []
    for k in range(n_groups):
        share = per_rating[group_of_rating == k].mean(axis=0)
        lift = share / np.maximum(overall, 1e-12)
        top = np.argsort(-lift)[:3]
        row = {"group": k, "users": int((labels == k).sum()),
               "genres rated more than average": ", ".join(
                   f"{genres[i]} x{lift[i]:.2f}" for i in top)}
        if users is not None:
            members = users.set_index(C.USER_COL).loc[ids.user_ids(np.flatnonzero(labels == k))]
            row["women"] = f"{(members[C.GENDER_COL] == 'F').mean():.0%}"
            row["most common age"] = members[C.AGE_LABEL_COL].mode().iloc[0]
            row["most common occupation"] = members[C.OCCUPATION_LABEL_COL].mode().iloc[0]
        rows.append(row)
    return labels, pd.DataFrame(rows).set_index("group")

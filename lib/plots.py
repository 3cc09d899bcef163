"""Figures: each as a static PNG (matplotlib) and an interactive HTML page (plotly).

Figures go to ``figures/<dataset>/``; the HTML pages share one local copy of plotly.js
written beside them, so they open with no internet.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from lib import config as C
from lib.data import genre_matrix

_DPI = 100
_PLOTLY_MIME = "application/vnd.plotly.v1+json"
# Nine colours people tell apart (matplotlib's tab10 less its grey); light grey for the rest.
_PALETTE = [plt.get_cmap("tab10")(i) for i in range(10) if i != 7]
_OTHER = (0.78, 0.78, 0.78, 1.0)
_MORE = 1.05  # a genre lift counted as "more than average"


def _hex(rgba) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(round(255 * c)) for c in rgba[:3]))


def figure_dir(dataset: str) -> Path:
    """``figures/<dataset>/`` (not created: `save` creates it)."""
    return C.FIGURES_DIR / dataset


def save(name: str, dataset: str, fig=None, interactive: go.Figure | None = None) -> dict:
    """Write `fig` as ``<name>.png`` and `interactive` as ``<name>.html``; return the paths."""
    folder = figure_dir(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    if fig is not None:
        fig.savefig(folder / f"{name}.png", dpi=_DPI, bbox_inches="tight")
        written["png"] = folder / f"{name}.png"
    if interactive is not None:
        interactive.write_html(folder / f"{name}.html", include_plotlyjs="directory",
                               full_html=True)
        written["html"] = folder / f"{name}.html"
    return written


def publish(name: str, dataset: str, fig, interactive: go.Figure | None = None) -> None:
    """Save a figure (`save`) and show it in the notebook.

    Run by a person in JupyterLab, the plotly figure shows inline (zoom, hover), with the
    PNG as the fallback of the same output; run headless (papermill, nbval), only the PNG
    is kept, which GitHub shows and which keeps the committed notebook small. Either way a
    line names the interactive HTML page.
    """
    import base64

    import plotly.io as pio
    from IPython.display import Markdown, display
    paths = save(name, dataset, fig, interactive)
    plt.close(fig)
    bundle = {"image/png": base64.b64encode(paths["png"].read_bytes()).decode("ascii"),
              "text/plain": f"<figure {name}>"}
    if interactive is not None and not C.headless():
        bundle[_PLOTLY_MIME] = json.loads(pio.to_json(interactive, validate=False))
    display(bundle, raw=True)
    if "html" in paths:
        display(Markdown(f"<small>Interactive version: `{C.shown(paths['html'])}` "
                         "(written each time the notebook runs)</small>"))


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


def heatmap(matrix: pd.DataFrame, title: str, kind: str = "count"):
    """A labelled square heatmap (genre x genre), static and interactive.

    ``kind="count"``: a sequential scale from 0. ``kind="similarity"``: the diagonal (1 by
    definition) is left blank; a sequential scale when every value is positive, else a
    diverging one centred on 0 with symmetric limits, so colour means the same on both
    sides.
    """
    values = matrix.to_numpy(dtype=float).copy()
    if kind == "similarity":
        np.fill_diagonal(values, np.nan)
    elif kind != "count":
        raise ValueError("kind must be 'count' or 'similarity'")
    lo, hi = np.nanmin(values), np.nanmax(values)
    if kind == "count" or lo >= 0:
        cmap, vmin, vmax, scale, mid = "viridis", 0.0, hi, "Viridis", None
    else:
        edge = max(abs(lo), abs(hi))
        cmap, vmin, vmax, scale, mid = "RdBu_r", -edge, edge, "RdBu_r", 0.0
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=90)
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    inter = px.imshow(pd.DataFrame(values, index=matrix.index, columns=matrix.columns),
                      title=title, color_continuous_scale=scale, zmin=vmin, zmax=vmax,
                      color_continuous_midpoint=mid)
    return fig, inter


def genre_similarity(vectors: np.ndarray, genres: list[str], movies: pd.DataFrame,
                     title: str):
    """Cosine similarity between genre vectors as a heatmap (`heatmap`), genres with
    fewer than `config.MIN_GENRE_MOVIES` movies left out and named in the title.

    Returns:
        ``(fig, interactive, table)``.
    """
    from lib.data import common_genres
    kept, left_out = common_genres(movies, genres)
    rows = [genres.index(g) for g in kept]
    unit = vectors[rows] / np.maximum(np.linalg.norm(vectors[rows], axis=1, keepdims=True),
                                      1e-12)
    table = pd.DataFrame(unit @ unit.T, index=kept, columns=kept)
    if left_out:
        title += "\nleft out, fewer than {} movies: {}".format(
            C.MIN_GENRE_MOVIES, ", ".join(f"{g} ({n})" for g, n in left_out.items()))
    fig, inter = heatmap(table, title, kind="similarity")
    return fig, inter, table


def demographics(users: pd.DataFrame):
    order = {C.AGE_LABEL_COL: list(C.AGE_LABELS.values())}
    columns = [C.GENDER_COL, C.AGE_LABEL_COL, C.OCCUPATION_LABEL_COL]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 2, 4]})
    frames = []
    for ax, col in zip(axes, columns, strict=True):
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
    for ax, col in zip(axes[0], columns, strict=True):
        ax.plot(history["epoch"], history[col], marker=".")
        ax.set(xlabel="epoch", title=col)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    long = history.melt(id_vars="epoch", value_vars=columns, var_name="metric")
    inter = px.line(long, x="epoch", y="value", facet_col="metric", markers=True, title=title)
    inter.update_yaxes(matches=None)
    return fig, inter


def attention_map(weights: np.ndarray, titles: list[list[str]], picks: list[str],
                  users: list[int], title: str):
    """What the sequential model's last position attended to, one row per user: a cell
    per movie of the history (latest on the right), shaded by its attention weight and
    labelled with its title; the model's top pick beside each row."""
    n_users, n_cols = weights.shape
    fig, ax = plt.subplots(figsize=(2.1 * n_cols + 2.5, 1.1 * n_users + 0.8))
    im = ax.imshow(weights, cmap="Blues", vmin=0, vmax=max(float(weights.max()), 1e-9),
                   aspect="auto")
    for i in range(n_users):
        for j in range(n_cols):
            text = titles[i][j]
            short = text if len(text) <= 24 else text[:22] + "…"
            ax.text(j, i, short, ha="center", va="center", fontsize=7,
                    color="white" if weights[i, j] > 0.6 * weights.max() else "black")
    ax.set_yticks(range(n_users), [f"user {u}\n→ {p if len(p) <= 34 else p[:32] + '…'}"
                                   for u, p in zip(users, picks, strict=True)])
    ax.set_xticks(range(n_cols), [f"{n_cols - 1 - j} before" if j < n_cols - 1 else "latest"
                                  for j in range(n_cols)])
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="attention")
    fig.tight_layout()
    inter = px.imshow(weights, x=[f"{n_cols - 1 - j} before" for j in range(n_cols)],
                      y=[f"user {u}" for u in users], color_continuous_scale="Blues",
                      title=title, labels={"x": "position", "color": "attention"})
    inter.update_traces(customdata=np.array(titles, dtype=object),
                        hovertemplate="%{customdata}<br>attention %{z:.3f}<extra></extra>")
    return fig, inter


def history_length(frame: pd.DataFrame, title: str):
    """A metric against how many of their latest movies the model was given (`frame`:
    one column per model or metric, indexed by that number)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for col in frame.columns:
        ax.plot(frame.index, frame[col], marker="o", label=col)
    ax.set(xscale="log", xlabel="latest movies given", title=title)
    ax.set_xticks(frame.index, [str(n) for n in frame.index])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    long = frame.rename_axis("movies given").reset_index().melt(id_vars="movies given")
    inter = px.line(long, x="movies given", y="value", color="variable", markers=True,
                    log_x=True, title=title)
    return fig, inter


# --- embeddings ------------------------------------------------------------------------

def reduce_2d(vectors: np.ndarray, method: str = "tsne", *, seed: int = C.SEED,
              pca_dims: int = 50, cache_dir: Path | None = None) -> np.ndarray:
    """2-D coordinates of `vectors` by PCA or t-SNE (scikit-learn; PCA to `pca_dims` first).

    With `cache_dir` (`artifacts.projection_dir`), results are kept keyed by a hash of the
    vectors, the method and the seed, so a rerun on the same embeddings is instant.
    """
    import hashlib

    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    from lib import artifacts
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    key = hashlib.sha1(vectors.tobytes() + f"{method}-{seed}-{pca_dims}".encode()).hexdigest()
    key = f"{method}-{key[:16]}"
    cached = artifacts.load_projection(cache_dir, key)
    if cached is not None:
        return cached
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
    artifacts.save_projection(cache_dir, key, coords)
    return coords


def _genre_lists(movies_df: pd.DataFrame, color_column: str) -> pd.Series:
    col = movies_df[color_column]
    return col.map(lambda g: g if isinstance(g, list) else str(g).split("|"))


def colour_genre(genres: pd.Series, n_colours: int = len(_PALETTE)) -> pd.Series:
    """The genre a movie is coloured by on a map: its least common genre in the catalogue
    (its most specific: "Animation" for Animation|Children's|Comedy, "Romance" for
    Drama|Romance). Genres outside the `n_colours` largest such groups become "other"."""
    counts = genres.explode().value_counts()
    rarest = genres.map(lambda g: min(g, key=lambda x: (counts[x], x)) if g else "other")
    sizes = rarest[rarest != "other"].value_counts()
    keep = sorted(sizes.index, key=lambda g: (-sizes[g], g))[:n_colours]  # ties by name
    return rarest.where(rarest.isin(keep), "other")


def embedding_map(embedded_df: pd.DataFrame, movies_df: pd.DataFrame, title: str, *,
                  color_column: str = C.GENRES_COL, method: str = "tsne",
                  seed: int = C.SEED, cache_dir: Path | None = None):
    """Movies in 2-D, each coloured by its most specific genre (`colour_genre`): the nine
    largest colour groups in distinct colours, the rest grey. Hover shows title, year and
    all genres."""
    coords = reduce_2d(embedded_df.to_numpy(), method, seed=seed, cache_dir=cache_dir)
    movies = movies_df.set_index(C.MOVIE_COL).loc[embedded_df.index]
    genres = _genre_lists(movies.reset_index(), color_column)
    colour = colour_genre(pd.Series(genres.to_numpy()))
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "colour": colour.to_numpy(),
                          "genres": genres.map("|".join).to_numpy(),
                          "title": movies[C.TITLE_COL].to_numpy(),
                          "year": movies[C.YEAR_COL].astype("float").to_numpy()})
    order = [g for g in frame["colour"].value_counts().index if g != "other"]
    colours = dict(zip(order, _PALETTE[:len(order)], strict=True))
    colours["other"] = _OTHER
    method_name = "PCA" if method == "pca" else "t-SNE"
    rule = "colour: each movie's least common genre; grey: all other genres"
    fig, ax = plt.subplots(figsize=(8.5, 7))
    other = frame[frame["colour"] == "other"]
    ax.scatter(other["x"], other["y"], s=6, color=_OTHER, label="other", linewidths=0)
    for genre in order:
        part = frame[frame["colour"] == genre]
        ax.scatter(part["x"], part["y"], s=7, color=colours[genre], alpha=0.8,
                   label=f"{genre} ({len(part)})", linewidths=0)
    ax.set_title(f"{title} ({method_name})\n{rule}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2.5, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    inter = px.scatter(frame, x="x", y="y", color="colour",
                       hover_data={"title": True, "year": True, "genres": True, "x": False,
                                   "y": False, "colour": False},
                       category_orders={"colour": [*order, "other"]},
                       color_discrete_map={g: _hex(c) for g, c in colours.items()},
                       labels={"colour": "least common genre"},
                       title=f"{title} ({method_name}); {rule}")
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
    """Few points (genres) in 2-D by PCA, each with its name, names kept apart."""
    from sklearn.decomposition import PCA
    coords = PCA(n_components=2).fit_transform(vectors)
    sizes = np.full(len(labels), 60.0) if sizes is None else 20 + 300 * sizes / sizes.max()
    fig, ax = plt.subplots(figsize=(7.5, 6))
    ax.scatter(coords[:, 0], coords[:, 1], s=sizes, alpha=0.6, color="#DD8452")
    texts = [ax.annotate(label, (x, y), xytext=(0, 6), textcoords="offset points",
                         fontsize=8, ha="center", va="bottom")
             for (x, y), label in zip(coords, labels, strict=True)]
    _keep_apart(fig, texts)
    ax.set(title=title, xticks=[], yticks=[])
    inter = px.scatter(x=coords[:, 0], y=coords[:, 1], text=labels, size=sizes, title=title)
    inter.update_traces(textposition="top center")
    return fig, inter


def _keep_apart(fig, texts) -> None:
    """Place each label, in turn, at the one of eight spots around its point where it
    overlaps the labels already placed least (greedy; enough for a few dozen labels)."""
    from matplotlib.transforms import Bbox
    fig.canvas.draw()  # fixes the axis limits, so positions on screen are final
    renderer = fig.canvas.get_renderer()
    spots = [(0, 6, "center", "bottom"), (0, -6, "center", "top"), (7, 0, "left", "center"),
             (-7, 0, "right", "center"), (5, 5, "left", "bottom"), (-5, 5, "right", "bottom"),
             (5, -5, "left", "top"), (-5, -5, "right", "top")]
    placed: list = []

    def overlap(box) -> float:
        hits = (Bbox.intersection(box, other) for other in placed)
        return sum(h.width * h.height for h in hits if h is not None)

    for text in texts:
        best = None
        for dx, dy, ha, va in spots:
            text.xyann = (dx, dy)
            text.set_ha(ha)
            text.set_va(va)
            text.update_positions(renderer)
            cost = overlap(text.get_window_extent(renderer))
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, va)
            if cost == 0:
                break
        _, dx, dy, ha, va = best
        text.xyann = (dx, dy)
        text.set_ha(ha)
        text.set_va(va)
        text.update_positions(renderer)
        placed.append(text.get_window_extent(renderer))


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
    it rates more than everyone does, and its demographics.

    A genre's lift for a group is the group's share of ratings in that genre over the
    share among all ratings; only lifts of at least 1.05 count as "more than average" (so
    none prints as "×1.0"), and genres with fewer than `config.MIN_GENRE_MOVIES` movies are
    not named. Each group is named by
    its two highest lifts, e.g. "Horror ×4.5, Sci-Fi ×1.9".

    Returns:
        ``(names, table)``: the group name of every user row, and one row per group
        (largest first).
    """
    from sklearn.cluster import KMeans
    labels = KMeans(n_clusters=n_groups, n_init=10, random_state=seed).fit_predict(user_vectors)
    g = pd.DataFrame(genre_matrix(movies, genres), index=movies[C.MOVIE_COL], columns=genres)
    per_rating = g.loc[ratings[C.MOVIE_COL]].to_numpy(dtype=float)
    group_of_rating = labels[ids.user_rows(ratings[C.USER_COL].to_numpy())]
    overall = per_rating.mean(axis=0)
    from lib.data import common_genres
    kept = set(common_genres(movies, genres)[0])  # a lift on 2 movies is noise
    rows, names = [], {}
    for k in range(n_groups):
        lift = per_rating[group_of_rating == k].mean(axis=0) / np.maximum(overall, 1e-12)
        above = [i for i in np.argsort(-lift) if lift[i] >= _MORE and genres[i] in kept][:3]
        names[k] = ", ".join(f"{genres[i]} ×{lift[i]:.1f}" for i in above[:2]) or \
            "no genre above average"
        row = {"group": names[k], "users": int((labels == k).sum()),
               "genres rated more than average (lift)": ", ".join(
                   f"{genres[i]} ×{lift[i]:.2f}" for i in above) or "none"}
        if users is not None:
            members = users.set_index(C.USER_COL).loc[ids.user_ids(np.flatnonzero(labels == k))]
            row["women"] = f"{(members[C.GENDER_COL] == 'F').mean():.0%}"
            row["most common age"] = members[C.AGE_LABEL_COL].mode().iloc[0]
            row["most common occupation"] = members[C.OCCUPATION_LABEL_COL].mode().iloc[0]
        rows.append(row)
    if len(set(names.values())) < len(names):  # two groups alike: number them
        names = {k: f"{k + 1}: {v}" for k, v in names.items()}
        for k, row in enumerate(rows):
            row["group"] = names[k]
    table = pd.DataFrame(rows).set_index("group").sort_values("users", ascending=False)
    return np.array([names[k] for k in labels], dtype=object), table


def user_sample(ids, dataset, names: np.ndarray, size: int, seed: int = C.SEED) -> pd.DataFrame:
    """A seeded sample of user rows with their id, group name and demographics."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(ids.n_users, size=min(size, ids.n_users), replace=False))
    people = pd.DataFrame({"row": rows, C.USER_COL: ids.user_ids(rows), "group": names[rows]})
    if dataset.users is not None:
        people = people.merge(dataset.users[[C.USER_COL, C.GENDER_COL, C.AGE_LABEL_COL,
                                             C.OCCUPATION_LABEL_COL]], on=C.USER_COL)
    return people

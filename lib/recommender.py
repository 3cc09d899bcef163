"""`MovieRecommender`: the class of the project's original usage, as a thin facade.

Every method calls the `lib` modules; nothing is implemented twice. Usage::

    recommender = MovieRecommender(data_dir="data/ml-1m/")
    recommender.load_data()
    recommender.preprocess_data()
    positive_pairs, negative_pairs = recommender.create_movie_genre_pairs()
    num_movies = recommender.movies_df["MovieID"].nunique()
    num_genres = len(recommender.genres)
    recommender.build_movie_genre_model(num_movies, num_genres)
    history = recommender.train_movie_genre_model(positive_pairs, negative_pairs)
    recommender.extract_movie_embeddings()
    recommender.visualize_embeddings(recommender.embedded_movie_df, recommender.movies_df,
                                     "Movie Embeddings", color_column="Genres")
    # stage 2
    recommender.split_data()
    recommender.build_user_movie_model()
    recommender.train_user_movie_model()
    recommender.recommend(user_id=1, k=10)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lib import config as C
from lib import data, evaluation, models, recommend, stages
from lib.ids import IdMap


class MovieRecommender:
    """Two-stage movie embeddings on one MovieLens folder.

    Args:
        data_dir: a release folder such as ``data/ml-1m/`` (its name says the release;
            a folder of another name is read in the ML-1M format).
        embedding_dim: vector size of both stages.
        seed: fixes every split, sample and initialisation.
    """

    def __init__(self, data_dir: str | Path = C.DATA_DIR / "ml-1m", *,
                 embedding_dim: int = C.EMBEDDING_DIM, seed: int = C.SEED):
        self.folder = Path(data_dir)
        self.name = self.folder.name if self.folder.name in C.DATASETS else "ml-1m"
        self.embedding_dim, self.seed = embedding_dim, seed
        self.dataset = self.ids = self.movie_genre_model = self.user_movie_model = None
        self.embedded_movie_df = self.embedded_genre_df = self.embedded_user_df = None
        self.split = self.stage2 = None

    # --- data ---
    def load_data(self) -> data.Dataset:
        """Load and validate the release (raises `DataError` naming any bad line)."""
        if self.folder.name == self.name:
            self.dataset = data.load_dataset(self.name, self.folder.parent)
        else:  # a folder of another name, in the ML-1M format
            self.dataset, problems = data.read_release(self.folder, self.name)
            if problems:
                raise data.DataError(problems)
        return self.dataset

    def preprocess_data(self) -> IdMap:
        """Map MovieLens ids to contiguous rows (the id map)."""
        self.ids = IdMap.from_dataset(self._data())
        return self.ids

    @property
    def movies_df(self) -> pd.DataFrame:
        """Movies with the project's columns plus ``MovieID``, ``Title``, ``Genres``
        (pipe-joined, as in ``movies.dat``)."""
        movies = self._data().movies
        return movies.assign(MovieID=movies[C.MOVIE_COL], Title=movies[C.TITLE_COL],
                             Genres=movies[C.GENRES_COL].map("|".join))

    @property
    def genres(self) -> list[str]:
        return list(self._data().genres)

    # --- stage 1 ---
    def create_movie_genre_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(movie_row, genre_row) positive pairs and as many sampled negative pairs."""
        return models.movie_genre_pairs(stages.movie_genres(self._data(), self._ids()),
                                        seed=self.seed)

    def build_movie_genre_model(self, num_movies: int, num_genres: int):
        if (num_movies, num_genres) != (self._ids().n_movies, self._ids().n_genres):
            raise ValueError(f"the data has {self.ids.n_movies} movies and "
                             f"{self.ids.n_genres} genres, not {num_movies} and {num_genres}")
        models.seed_everything(self.seed)
        self.movie_genre_model = models.build_movie_genre_model(
            num_movies, num_genres, self.embedding_dim, seed=self.seed)
        return self.movie_genre_model

    def train_movie_genre_model(self, positive_pairs: np.ndarray, negative_pairs=None, *,
                                epochs: int = 40, batch_size: int = 512):
        """Fit stage 1 on the genres of `positive_pairs`. Negatives are drawn anew every
        epoch (so `negative_pairs` only sets the first draw's size, which is the same)."""
        if self.movie_genre_model is None:
            raise RuntimeError("call build_movie_genre_model first")
        matrix = np.zeros((self._ids().n_movies, self.ids.n_genres), dtype=bool)
        matrix[positive_pairs[:, 0], positive_pairs[:, 1]] = True
        return models.train_movie_genre_model(self.movie_genre_model, matrix, epochs=epochs,
                                              batch_size=batch_size, seed=self.seed)

    def extract_movie_embeddings(self) -> pd.DataFrame:
        """Movie (and genre) vectors by layer name, indexed by MovieLens id / genre."""
        if self.movie_genre_model is None:
            raise RuntimeError("train the movie-genre model first")
        ids = self._ids()
        self.embedded_movie_df = pd.DataFrame(
            models.embeddings(self.movie_genre_model, "movie_embedding"),
            index=pd.Index(ids.movie_ids(np.arange(ids.n_movies)), name=C.MOVIE_COL))
        self.embedded_genre_df = pd.DataFrame(
            models.embeddings(self.movie_genre_model, "genre_embedding"),
            index=pd.Index(ids.genre_names(np.arange(ids.n_genres)), name="genre"))
        return self.embedded_movie_df

    def visualize_embeddings(self, embedded_df: pd.DataFrame, movies_df: pd.DataFrame,
                             title: str, color_column: str = "Genres", method: str = "tsne"):
        """A 2-D map (t-SNE or PCA) of the vectors, coloured by primary genre; returns the
        matplotlib figure and the interactive plotly figure."""
        from lib import plots
        return plots.embedding_map(embedded_df, movies_df, title, color_column=color_column,
                                   method=method, seed=self.seed)

    # --- stage 2 ---
    def split_data(self, method: str = "per-item", ratio: float = 0.75) -> evaluation.Split:
        self.split = evaluation.make_split(self._data().ratings, method, ratio=ratio,
                                           seed=self.seed)
        self._train = evaluation.interactions(self.split.train, self._ids())
        return self.split

    def build_user_movie_model(self, init: str = "stage1"):
        """Remember how stage 2 starts; it is built and trained in `train_user_movie_model`
        (which builds it twice: to pick the epochs on validation, then to refit)."""
        if init not in models.INIT_MODES:
            raise ValueError(f"init must be one of {models.INIT_MODES}")
        self.init = init
        return init

    def train_user_movie_model(self, *, epochs: int = C.MAX_EPOCHS, side_features: bool = False):
        if self.split is None:
            self.split_data()
        if self.embedded_movie_df is None and getattr(self, "init", "stage1") != "random":
            raise RuntimeError("stage 2 starts from stage 1: extract_movie_embeddings first")
        vectors = None if self.embedded_movie_df is None else self.embedded_movie_df.to_numpy()
        self.stage2 = stages.run_stage2(self._data(), self._ids(), self.split.train, vectors,
                                        init=getattr(self, "init", "stage1"),
                                        dim=self.embedding_dim, side=side_features,
                                        epochs=epochs, seed=self.seed)
        self.user_movie_model = self.stage2.ranking
        self._engine = None
        ids = self.ids
        self.embedded_user_df = pd.DataFrame(
            self.stage2.user_vectors(),
            index=pd.Index(ids.user_ids(np.arange(ids.n_users)), name=C.USER_COL))
        return self.stage2

    def evaluate(self, k: int = C.DEFAULT_K) -> dict[str, float]:
        """Ranking metrics at k on the test part of the split."""
        test = evaluation.interactions(self.split.test, self._ids())
        return evaluation.evaluate_ranking(self._stage2().scores(), self._train, test, k)[0]

    def recommend(self, user_id: int, k: int = C.DEFAULT_K) -> pd.DataFrame:
        """Top-k movies for a known user from the engine: never a movie they rated."""
        return self.engine().recommend(user_id, k)

    def engine(self) -> recommend.Engine:
        """The recommendation engine over the stage-2 model trained here."""
        if getattr(self, "_engine", None) is None:
            s1 = (None, None) if self.embedded_movie_df is None else (
                self.embedded_movie_df.to_numpy(), self.embedded_genre_df.to_numpy())
            self._engine = recommend.Engine.from_stage2(self._stage2(), self._ids(),
                                                        self._data(), *s1)
        return self._engine

    def similar_movies(self, movie_id: int, k: int = C.DEFAULT_K) -> pd.DataFrame:
        """Movies closest to `movie_id` in the stage-2 movie table (stage 1 before it)."""
        if self.stage2 is not None:
            return self.engine().similar(movie_id, k)
        if self.embedded_movie_df is None:
            raise RuntimeError("train a model first")
        return recommend.similar_movies(self.embedded_movie_df.to_numpy(), self._ids(),
                                        self._data().movies, movie_id, k)

    # --- helpers ---
    def _data(self) -> data.Dataset:
        if self.dataset is None:
            raise RuntimeError("call load_data first")
        return self.dataset

    def _ids(self) -> IdMap:
        if self.ids is None:
            raise RuntimeError("call preprocess_data first")
        return self.ids

    def _stage2(self):
        if self.stage2 is None:
            raise RuntimeError("call train_user_movie_model first")
        return self.stage2

"""The original `MovieRecommender` usage runs, as a facade over `lib`."""
from __future__ import annotations

import numpy as np
import pytest

from lib import MovieRecommender
from lib.data import load_dataset


def test_original_usage_runs_on_ml1m_format_data(tmp_path):
    load_dataset("synthetic-tiny", tmp_path)  # writes tmp_path/synthetic-tiny (ML-1M format)
    recommender = MovieRecommender(data_dir=tmp_path / "synthetic-tiny", embedding_dim=16)
    recommender.load_data()
    recommender.preprocess_data()
    positive_pairs, negative_pairs = recommender.create_movie_genre_pairs()
    num_movies = recommender.movies_df["MovieID"].nunique()
    num_genres = len(recommender.genres)
    recommender.build_movie_genre_model(num_movies, num_genres)
    history = recommender.train_movie_genre_model(positive_pairs, negative_pairs, epochs=5)
    assert history.history["loss"][-1] < history.history["loss"][0]
    recommender.extract_movie_embeddings()
    assert recommender.embedded_movie_df.shape == (num_movies, 16)
    fig, inter = recommender.visualize_embeddings(
        recommender.embedded_movie_df, recommender.movies_df, "Movie Embeddings",
        color_column="Genres", method="pca")
    assert len(fig.axes[0].collections) > 0 and len(inter.data) > 0
    # Stage 2 and recommendations.
    recommender.split_data()
    recommender.build_user_movie_model("stage1")
    recommender.train_user_movie_model(epochs=3)
    recs = recommender.recommend(user_id=1, k=5)
    assert len(recs) == 5
    # One rule for "already seen", the engine's: every movie the user rated, test
    # ratings included (the facade answers a person, not a benchmark).
    rated = set(recommender.dataset.ratings.query("user_id == 1")["movie_id"])
    assert rated - set(recommender.split.train.query("user_id == 1")["movie_id"])
    assert not rated & set(recs["movie_id"])
    assert recs.equals(recommender.engine().recommend(1, 5))
    metrics = recommender.evaluate()
    assert 0 <= metrics["ndcg@10"] <= 1
    similar = recommender.similar_movies(int(recommender.movies_df["MovieID"].iloc[0]), k=3)
    assert len(similar) == 3 and np.all(np.diff(similar["similarity"]) <= 0)


def test_wrong_sizes_and_order_are_explained(tmp_path):
    load_dataset("synthetic-tiny", tmp_path)
    recommender = MovieRecommender(data_dir=tmp_path / "synthetic-tiny")
    with pytest.raises(RuntimeError, match="call load_data first"):
        recommender.preprocess_data()
    recommender.load_data()
    recommender.preprocess_data()
    with pytest.raises(ValueError, match="the data has 400 movies and 18 genres"):
        recommender.build_movie_genre_model(3952, 18)

"""Helpers the notebooks call: data, models, evaluation, recommendation, plots, pipeline.

`from lib import MovieRecommender` gives the class of the project's original usage; it is
imported lazily so that data-only work does not start TensorFlow.
"""


def __getattr__(name):
    if name == "MovieRecommender":
        from lib.recommender import MovieRecommender
        return MovieRecommender
    raise AttributeError(f"module 'lib' has no attribute {name!r}")

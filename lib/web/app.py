"""Routes only: parse the request, ask the engine (`lib.recommend.Engine`), render.

`create_app` builds the app over one dataset's saved models (the serving models when
`python -m lib train` wrote them, else the notebooks'), loaded once and only read after, so
requests can run in parallel threads (the WSGI server's). Bad input is a 400 or 404 with a
message saying what is allowed, as JSON under ``/api/`` and as a page elsewhere; every
string from the data is escaped (Jinja's autoescape; the page script writes text, never
HTML).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from flask import Flask, abort, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from lib import artifacts
from lib import config as C
from lib.errors import UnknownIdError
from lib.recommend import Engine

log = logging.getLogger(__name__)

MAX_K = 100
MAX_LIKED = 500
MAX_BODY = 64 * 1024  # bytes: 500 ids and three labels fit many times over
SEARCH_LIMIT = 10


class BadRequest(ValueError):
    """A parameter the app cannot use: the message says what is allowed."""


def create_app(dataset, models_root: Path | str | None = None, *,
               serving: bool | None = None) -> Flask:
    """The app over `dataset`'s models (under `models_root`, default ``models/``).

    `dataset` is a loaded `data.Dataset` (its ratings give the stars on user pages).
    `serving` as in `Engine.load`: None takes the serving models when they exist.

    Raises:
        ArtifactError: no models for `dataset`, or models trained on other data.
    """
    engine = Engine.load(dataset, models_root, serving=serving).prepare()
    coords = artifacts.load_map(dataset.name, models_root) if engine.serving else None
    points = None if coords is None else _map_points(engine, coords)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["JSON_SORT_KEYS"] = False
    app.json.ensure_ascii = False
    app.extensions["engine"] = engine
    demographics = _demographic_choices(engine)
    about = {"dataset": dataset.name, "synthetic": bool(dataset.synthetic),
             "models": engine.models_used(), "serving": engine.serving}

    @app.context_processor
    def _everywhere():
        return {"about": about}

    # --- pages ---
    @app.get("/")
    def home():
        return render_template("home.html", demographics=demographics, max_liked=MAX_LIKED)

    @app.get("/users/<user_id>")
    def user_page(user_id):
        uid = _id(user_id, "user id")
        k = _k(request.args)
        top = _known_user(engine, uid, k)
        rated = engine.rated_by(uid)
        upcoming, after = _next(engine, uid, k) if engine.has_next else (None, None)
        return render_template("user.html", user_id=uid, top=top, rated=rated.to_dict("records"),
                               k=k, upcoming=upcoming, after=after)

    @app.get("/movies/<movie_id>")
    def movie_page(movie_id):
        mid = _id(movie_id, "movie id")
        movie = _movie(engine, mid)
        similar = engine.similar(mid, _k(request.args)).to_dict("records")
        genres = (engine.genre_scores(mid).head(5).to_dict("records")
                  if engine.stage1_movies is not None else [])
        return render_template("movie.html", movie=movie, similar=similar, genre_scores=genres)

    @app.get("/map")
    def map_page():
        return render_template("map.html", has_map=points is not None)

    @app.get("/static/plotly.min.js")
    def plotly_js():
        import plotly
        path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        return send_file(path, mimetype="text/javascript", max_age=86400)

    # --- JSON API ---
    @app.get("/api/health")
    def health():
        return jsonify(status="ok", dataset=dataset.name, movies=int(engine.ids.n_movies),
                       users=int(engine.ids.n_users), models=engine.models_used(),
                       serving=engine.serving, map=points is not None)

    @app.get("/api/search")
    def search():
        query = request.args.get("q", "")
        if len(query) > 200:
            raise BadRequest("q: at most 200 characters")
        limit = _int(request.args, "limit", SEARCH_LIMIT, 1, MAX_K)
        found = engine.search(query, limit)
        return jsonify(query=query, movies=[_movie_json(r) for r in found.to_dict("records")])

    @app.get("/api/users/<user_id>/recommendations")
    def user_recommendations(user_id):
        uid = _id(user_id, "user id")
        return jsonify(user_id=uid, recommendations=_known_user(engine, uid, _k(request.args)))

    @app.get("/api/users/<user_id>/next")
    def user_next(user_id):
        uid = _id(user_id, "user id")
        k = _k(request.args)
        if not engine.has_next:
            abort(404, description="no sequential model beside these models (notebook 06 "
                                   "or `python -m lib train` writes one)")
        upcoming, after = _next(engine, uid, k)
        return jsonify(user_id=uid, next=upcoming, after=after)

    @app.route("/api/recommend", methods=["GET", "POST"])
    def recommend_new():
        args = _new_user_args(request, demographics)
        try:
            top = engine.new_user(args["liked"], args["k"], **args["demographics"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        liked, rows = args["liked"], top.to_dict("records")
        why = (engine.reasons([r[C.MOVIE_COL] for r in rows], liked=liked) if liked
               else [[] for _ in rows])
        return jsonify(liked=liked, demographics=args["demographics"],
                       recommendations=[_movie_json(r, w) for r, w in zip(rows, why,
                                                                          strict=True)])

    @app.get("/api/movies/<movie_id>/similar")
    def similar(movie_id):
        mid = _id(movie_id, "movie id")
        found = engine.similar(mid, _k(request.args))  # an unknown id: a 404 from the engine
        return jsonify(movie_id=mid, similar=[_movie_json(r) for r in found.to_dict("records")])

    @app.get("/api/map")
    def map_points():
        if points is None:
            abort(404, description="no map: the serving models have none "
                                   "(train them with `python -m lib train`)")
        return jsonify(points)

    # --- errors: a message, never a traceback ---
    @app.errorhandler(BadRequest)
    def _bad(exc):
        return _error(400, str(exc))

    @app.errorhandler(UnknownIdError)
    def _unknown(exc):
        return _error(404, str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc):
        standard = {404: (NotFound.description, f"no page at {request.path}"),
                    405: (MethodNotAllowed.description,
                          f"{request.method} is not allowed on {request.path}"),
                    413: (RequestEntityTooLarge.description,
                          f"the request body is larger than {MAX_BODY // 1024} KB")}
        default, plain = standard.get(exc.code, (None, None))
        return _error(exc.code or 500, plain if exc.description == default else exc.description)

    @app.errorhandler(Exception)
    def _crash(exc):  # a bug, not bad input: logged with its traceback, the page says so
        log.exception("error answering %s", request.path)
        return _error(500, "internal error: the server log has the details")

    return app


def _map_points(engine: Engine, coords: dict) -> dict:
    """The map's points with titles and first genres, built once."""
    mids = coords["movie_ids"]
    movies = engine.movies.loc[mids]
    return {"movie_id": mids.tolist(), "x": np.round(coords["x"], 3).tolist(),
            "y": np.round(coords["y"], 3).tolist(), "title": movies[C.TITLE_COL].tolist(),
            "genre": [g[0] if len(g) else C.NO_GENRES for g in movies[C.GENRES_COL]]}


def _error(code: int, message: str):
    if request.path.startswith("/api/"):
        return jsonify(error=message, status=code), code
    return render_template("error.html", code=code, message=message), code


def _int(args, name: str, default: int, low: int, high: int) -> int:
    text = args.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer from {low} to {high}, "
                         f"got {str(text)[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {value}")
    return value


def _k(args) -> int:
    return _int(args, "k", C.DEFAULT_K, 1, MAX_K)


def _id(text, what: str) -> int:
    """An id as MovieLens writes them: digits only, at most 18 (so it fits an int64)."""
    text = str(text)
    if text.startswith("-") and text[1:].isdigit():
        raise BadRequest(f"{what} must be a whole number >= 0, got {text[:40]}")
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise BadRequest(f"{what} must be a whole number of at most 18 digits, "
                         f"got {text[:40]!r}")
    return int(text)


def _movie(engine: Engine, movie_id: int) -> dict:
    if movie_id not in engine.movies.index or movie_id in engine.new_movies:
        raise UnknownIdError(f"unknown movie id: {movie_id}")
    row = engine.movies.loc[movie_id]
    year = row.get(C.YEAR_COL)
    return {"movie_id": movie_id, "title": row[C.TITLE_COL], "genres": list(row[C.GENRES_COL]),
            "year": None if year is None or year != year else int(year)}


def _movie_json(row: dict, because=None) -> dict:
    """A movie of an engine frame as JSON; `because`: the ``(id, title)`` pairs behind it
    (`Engine.reasons`)."""
    out = {"movie_id": int(row[C.MOVIE_COL]), "title": row[C.TITLE_COL],
           "genres": list(row[C.GENRES_COL])}
    for name in ("rank", "score", "similarity", "ratings"):
        if name in row:
            out[name] = (int(row[name]) if name in ("rank", "ratings")
                         else round(float(row[name]), 4))
    if C.YEAR_COL in row and row[C.YEAR_COL] == row[C.YEAR_COL]:
        out["year"] = int(row[C.YEAR_COL])
    if because is not None:
        out["because"] = [{"movie_id": m, "title": t} for m, t in because]
    return out


def _known_user(engine: Engine, user_id: int, k: int) -> list[dict]:
    rows = engine.recommend(user_id, k).to_dict("records")
    why = engine.reasons([r[C.MOVIE_COL] for r in rows], user_id=user_id)
    return [_movie_json(r, w) for r, w in zip(rows, why, strict=True)]


def _next(engine: Engine, user_id: int, k: int) -> tuple[list[dict], list[dict]]:
    """The sequential model's next movies for a known user, and the movies of their
    history it attended to most."""
    top = engine.next_for(user_id, k)
    return ([_movie_json(r) for r in top.to_dict("records")],
            [_movie_json(r) for r in top.attrs["after"].to_dict("records")])


def _demographic_choices(engine: Engine) -> dict[str, list[str]]:
    """The labels a new user may pick, per input the models have (none without inputs)."""
    if engine.demographics is None:
        return {}
    return {name: part["labels"] for name, part in engine.demographics["features"].items()}


def _new_user_args(req, choices: dict) -> dict:
    """liked (ids), k and demographics from a JSON body or the query string."""
    if req.method == "POST":
        body = req.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("send a JSON object: {\"liked\": [movie ids], \"k\": 10, "
                             "\"gender\": ..., \"age\": ..., \"occupation\": ...}")
        liked = body.get("liked", [])
        if isinstance(liked, (str, int)):
            liked = [liked]
        if not isinstance(liked, list):
            raise BadRequest("liked must be a list of movie ids")
        args = {"k": body.get("k")}
        labels = {n: body.get(n) for n in ("gender", "age", "occupation")}
    else:
        text = req.args.get("liked", "")
        liked = [p for p in text.split(",") if p.strip()]
        args = req.args
        labels = {n: req.args.get(n) for n in ("gender", "age", "occupation")}
    if len(liked) > MAX_LIKED:
        raise BadRequest(f"liked: at most {MAX_LIKED} movie ids, got {len(liked):,}")
    ids = []
    for item in liked:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise BadRequest(f"liked: movie ids are whole numbers, got {item!r}"[:120])
        ids.append(_id(item, "liked movie id"))
    ids = list(dict.fromkeys(ids))
    k = args.get("k")
    k = _int({"k": None if k is None else str(k)}, "k", C.DEFAULT_K, 1, MAX_K)
    given = {}
    names = {"gender": C.GENDER_COL, "age": C.AGE_LABEL_COL, "occupation": C.OCCUPATION_COL}
    for name, value in labels.items():
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > 60:
            raise BadRequest(f"{name} must be a label such as those on the home page")
        if names[name] not in choices:
            raise BadRequest(f"these models have no {name} input: leave {name} out")
        given[name] = value
    if not ids and not given:
        raise BadRequest("give at least one liked movie id (liked=1,2,3), or a gender, age "
                         "group or occupation")
    return {"liked": ids, "k": k, "demographics": given}

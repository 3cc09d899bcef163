"""The web app through Flask's test client: every route, every kind of bad input, escaping,
and parallel requests, over serving models trained on the tiny synthetic data."""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import ACCENT_TITLE, SCRIPT_TITLE

from lib import artifacts
from lib.errors import ArtifactError
from lib.web import create_app
from lib.web.app import MAX_LIKED


@pytest.fixture(scope="module")
def app(served_tiny):
    ds, root = served_tiny
    return create_app(ds, root)


@pytest.fixture
def client(app):
    return app.test_client()


def _rated(ds, user_id):
    return set(ds.ratings.loc[ds.ratings["user_id"] == user_id, "movie_id"])


def test_health_says_which_models_answer(client, served_tiny):
    body = client.get("/api/health").get_json()
    assert body["status"] == "ok" and body["dataset"] == "synthetic-tiny"
    assert body["serving"] is True and body["map"] is True
    assert body["models"].startswith("serving models, trained on every rating")
    assert body["movies"] == served_tiny[0].movies.shape[0]


def test_search_ignores_accents_and_case_and_ranks_by_ratings(client, served_tiny):
    for query in ("creme brulee", "CRÈME", "brulee conspir", "  Creme,  the "):
        found = client.get("/api/search", query_string={"q": query}).get_json()["movies"]
        assert [m["title"] for m in found] == [ACCENT_TITLE], query
    assert client.get("/api/search?q=").get_json()["movies"] == []
    assert client.get("/api/search?q=zzzzqqq").get_json()["movies"] == []
    # a word matches at the start of a title's words only: "host" is not "Ghost"
    ghost = client.get("/api/search?q=ghost&limit=100").get_json()["movies"]
    assert ghost and all("ghost" in m["title"].lower() for m in ghost)
    assert not any(m["movie_id"] == 2 for m in
                   client.get("/api/search?q=host&limit=100").get_json()["movies"])
    counts = [m["ratings"] for m in ghost]
    assert counts == sorted(counts, reverse=True)


def test_a_known_user_gets_unrated_movies_with_reasons_from_their_ratings(client, served_tiny):
    ds, _ = served_tiny
    body = client.get("/api/users/1/recommendations?k=7").get_json()
    recs = body["recommendations"]
    assert len(recs) == 7 and [r["rank"] for r in recs] == list(range(1, 8))
    rated = _rated(ds, 1)
    assert not rated & {r["movie_id"] for r in recs}
    assert all(r["because"] and {b["movie_id"] for b in r["because"]} <= rated for r in recs)
    page = client.get("/users/1")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Top 10 for this user" in html and f"Rated ({len(rated)})" in html
    assert "★" in html


def test_a_known_user_gets_what_to_watch_next_never_a_rated_movie(client, served_tiny):
    ds, _ = served_tiny
    body = client.get("/api/users/3/next?k=6").get_json()
    upcoming, rated = body["next"], _rated(ds, 3)
    assert len(upcoming) == 6 and not rated & {m["movie_id"] for m in upcoming}
    # what the model looked at most: movies of the user's own history
    assert body["after"] and {m["movie_id"] for m in body["after"]} <= rated
    html = client.get("/users/3").get_data(as_text=True)
    assert "Next for you" in html and upcoming[0]["title"] in html
    assert client.get("/api/users/99999/next").status_code == 404


def test_new_user_from_liked_movies_by_post_and_by_query(client):
    liked = [1, 3, 5]
    body = client.post("/api/recommend", json={"liked": liked, "k": 10}).get_json()
    recs = body["recommendations"]
    assert body["liked"] == liked and len(recs) == 10
    assert not set(liked) & {r["movie_id"] for r in recs}
    assert all(r["because"] and {b["movie_id"] for b in r["because"]} <= set(liked)
               for r in recs)
    by_query = client.get("/api/recommend?liked=1,3,5").get_json()
    assert by_query["recommendations"] == recs
    # an id given twice counts once
    twice = client.post("/api/recommend", json={"liked": [1, 1, 3, 5]}).get_json()
    assert twice["liked"] == liked


def test_movie_pages_and_similar_movies(client):
    body = client.get("/api/movies/1/similar?k=4").get_json()
    assert len(body["similar"]) == 4 and 1 not in {m["movie_id"] for m in body["similar"]}
    sims = [m["similarity"] for m in body["similar"]]
    assert sims == sorted(sims, reverse=True)
    html = client.get("/movies/1").get_data(as_text=True)
    assert "Similar movies" in html and "Genres its stage-1 vector says most" in html


def test_titles_from_the_data_are_shown_as_text(client):
    fan = next(m for m in range(1, 301) if 2 in {r["movie_id"] for r in client.get(
        f"/api/movies/{m}/similar").get_json().get("similar", [])})
    for url in ("/movies/2", f"/movies/{fan}"):  # its own page, a page that lists it
        html = client.get(url).get_data(as_text=True)
        assert "Ghost (1987)" in html and "<script>window" not in html  # never a live tag
    html = client.get("/movies/2").get_data(as_text=True)
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; Ghost (1987)" in html
    # JSON carries the title as data (the page script writes it with textContent)
    response = client.get("/api/search?q=pwned")
    assert response.mimetype == "application/json"
    assert [m["title"] for m in response.get_json()["movies"]] == [SCRIPT_TITLE]


def test_the_map_has_a_point_per_movie(client, served_tiny):
    body = client.get("/api/map").get_json()
    n = served_tiny[0].movies.shape[0]
    assert len(body["movie_id"]) == len(body["x"]) == len(body["title"]) == n
    html = client.get("/map").get_data(as_text=True)
    assert "/static/plotly.min.js" in html and 'id="map"' in html
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert b"plotly.js" in js.data[:200]


@pytest.mark.parametrize("url, code, words", [
    ("/api/users/99999/recommendations", 404, "unknown user id: 99999"),
    ("/api/users/abc/recommendations", 400,
     "user id must be a whole number of at most 18 digits, got 'abc'"),
    ("/api/users/99999999999999999999999/recommendations", 400, "at most 18 digits"),
    ("/api/users/1_0/recommendations", 400, "got '1_0'"),
    ("/api/recommend?liked=" + "9" * 30, 400, "at most 18 digits"),
    ("/api/users/-3/recommendations", 400, "user id must be a whole number >= 0"),
    ("/api/users/1/recommendations?k=ten", 400, "k must be an integer from 1 to 100"),
    ("/api/users/1/recommendations?k=0", 400, "k must be an integer from 1 to 100, got 0"),
    ("/api/users/1/recommendations?k=101", 400, "got 101"),
    ("/api/movies/99999/similar", 404, "unknown movie id: 99999"),
    ("/api/movies/1.5/similar", 400, "movie id must be a whole number"),
    ("/api/recommend", 400, "give at least one liked movie id"),
    ("/api/recommend?liked=1,x", 400, "liked movie id must be a whole number of at most 18 "
                                      "digits, got 'x'"),
    ("/api/recommend?liked=99999", 404, "unknown movie id"),
    ("/api/recommend?liked=1&gender=F", 400, "these models have no gender input"),
    ("/api/search?q=" + "a" * 201, 400, "q: at most 200 characters"),
    ("/api/search?q=ab&limit=0", 400, "limit must be an integer from 1 to 100"),
    ("/api/nothing-here", 404, "no page at /api/nothing-here"),
])
def test_bad_api_input_gets_a_json_message(client, url, code, words):
    response = client.get(url)
    assert response.status_code == code, response.get_data(as_text=True)
    body = response.get_json()
    assert words in body["error"] and body["status"] == code


@pytest.mark.parametrize("body, code, words", [
    ({"liked": list(range(1, MAX_LIKED + 2))}, 400, f"at most {MAX_LIKED} movie ids, got 501"),
    ({"liked": "1,2"}, 400, "movie id must be a whole number"),
    ({"liked": {"a": 1}}, 400, "liked must be a list of movie ids"),
    ({"liked": [1, None]}, 400, "movie ids are whole numbers, got None"),
    ({"liked": [1, True]}, 400, "movie ids are whole numbers, got True"),
    ({"liked": [10 ** 30]}, 400, "at most 18 digits"),
    ({"liked": [1], "k": "many"}, 400, "k must be an integer from 1 to 100"),
    ({"liked": [1], "age": 25}, 400, "age must be a label"),
    ([1, 2, 3], 400, "send a JSON object"),
])
def test_bad_json_bodies_get_a_message(client, body, code, words):
    response = client.post("/api/recommend", json=body)
    assert response.status_code == code
    assert words in response.get_json()["error"]


def test_malformed_and_oversized_bodies_and_wrong_methods(client):
    response = client.post("/api/recommend", data="{not json", content_type="application/json")
    assert response.status_code == 400 and "send a JSON object" in response.get_json()["error"]
    response = client.post("/api/recommend", data="x" * 70_000, content_type="application/json")
    assert response.status_code == 413 and "larger than 64 KB" in response.get_json()["error"]
    response = client.post("/api/health")
    assert response.status_code == 405
    assert response.get_json()["error"] == "POST is not allowed on /api/health"


def test_pages_with_bad_ids_are_pages_that_say_so(client):
    response = client.get("/users/99999")
    assert response.status_code == 404 and "text/html" in response.content_type
    assert "unknown user id: 99999" in response.get_data(as_text=True)
    response = client.get("/movies/abc")
    assert response.status_code == 400
    assert "movie id must be a whole number of at most 18 digits, got &#39;abc&#39;" in \
        response.get_data(as_text=True)
    assert client.get("/users/" + "9" * 30).status_code == 400
    response = client.get("/nowhere")
    assert response.status_code == 404 and "no page at /nowhere" in response.get_data(as_text=True)


def test_parallel_requests_get_the_answers_of_serial_ones(app):
    urls = [f"/api/users/{u}/recommendations?k=5" for u in range(1, 41)] + \
           [f"/api/movies/{m}/similar" for m in range(1, 41)] + \
           [f"/api/recommend?liked={m},{m + 1},{m + 2}" for m in range(1, 41)]

    def get(url):
        return app.test_client().get(url).get_json()

    serial = [get(u) for u in urls]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(get, urls))
    assert parallel == serial


def test_without_serving_models_the_notebook_models_answer_and_the_map_says_why(
        served_tiny, tmp_path):
    """Copy only the notebooks' layout (stage1/ and stage2/ at the top): the app takes
    them, says so, and the map page explains how to get one."""
    ds, root = served_tiny
    serving = artifacts.serving_dir(ds.name, root)
    other = tmp_path / "models"
    for stage in ("stage1", "stage2"):
        shutil.copytree(serving / stage, artifacts.stage_dir(ds.name, stage, other))
    app = create_app(ds, other, serving=False)
    client = app.test_client()
    assert client.get("/api/health").get_json()["serving"] is False
    # no sequential model there: no "next" list, and its route says why
    assert "Next for you" not in client.get("/users/3").get_data(as_text=True)
    response = client.get("/api/users/3/next")
    assert response.status_code == 404 and "no sequential model" in response.get_json()["error"]
    assert client.get("/api/map").status_code == 404
    html = client.get("/map").get_data(as_text=True)
    assert "python -m lib train --dataset synthetic-tiny" in html
    with pytest.raises(ArtifactError, match="no stage2 models for synthetic-tiny"):
        create_app(ds, tmp_path / "empty")

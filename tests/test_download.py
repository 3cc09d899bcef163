"""The download path, on zips this test makes and serves itself (file:// and loopback HTTP)."""
from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from functools import partial

import pytest
from conftest import write_ml1m

from lib.data import load_dataset
from lib.download import DownloadError, download, install_zip


@pytest.fixture
def release_zip(tmp_path):
    """A zip laid out as GroupLens's ml-1m.zip (one top folder `ml-1m/`)."""
    src = write_ml1m(tmp_path / "src" / "ml-1m")
    path = tmp_path / "served" / "ml-1m.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f"ml-1m/{f.name}")
    return path, hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def server(release_zip):
    """A loopback HTTP server over the folder holding the zip."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=release_zip[0].parent)
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _leftovers(data_dir):
    return sorted(p.name for p in data_dir.iterdir() if p.name.startswith("."))


def test_http_download_checks_md5_and_unpacks(tmp_path, release_zip, server):
    zip_path, md5 = release_zip
    data_dir = tmp_path / "data"
    folder = download("ml-1m", data_dir, urls=[f"{server}/ml-1m.zip"], md5=md5,
                      progress=False)
    assert folder == data_dir / "ml-1m"
    assert load_dataset("ml-1m", data_dir).counts()["ratings"] == 6
    assert (data_dir / "ml-1m.zip").read_bytes() == zip_path.read_bytes()
    assert _leftovers(data_dir) == []


def test_mirrors_are_tried_in_turn(tmp_path, release_zip, server):
    zip_path, md5 = release_zip
    urls = [f"{server}/missing.zip", zip_path.as_uri()]
    folder = download("ml-1m", tmp_path / "data", urls=urls, md5=md5, progress=False)
    assert (folder / "ratings.dat").is_file()


def test_wrong_checksum_leaves_nothing(tmp_path, release_zip):
    zip_path, _ = release_zip
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError, match="md5 .* is not the md5 of ml-1m.zip"):
        download("ml-1m", data_dir, urls=[zip_path.as_uri()], md5="0" * 32, progress=False)
    assert not (data_dir / "ml-1m").exists() and not (data_dir / "ml-1m.zip").exists()
    assert _leftovers(data_dir) == []


def test_the_recorded_ml1m_checksum_is_enforced(tmp_path, release_zip):
    """Our fixture zip is not GroupLens's ml-1m.zip, so the default check must reject it."""
    with pytest.raises(DownloadError, match="c4d9eecfca2ab87c1945afe126590906"):
        install_zip(release_zip[0], "ml-1m", tmp_path / "data")


def test_truncated_zip_is_rejected_atomically(tmp_path, release_zip):
    zip_path, _ = release_zip
    cut = tmp_path / "cut.zip"
    cut.write_bytes(zip_path.read_bytes()[:-60])
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError, match="not a complete zip"):
        install_zip(cut, "ml-1m", data_dir, md5=None)
    assert not (data_dir / "ml-1m").exists()
    assert _leftovers(data_dir) == []


def test_zip_of_another_release_is_named(tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t1\n")
    with pytest.raises(DownloadError, match="has no ml-1m/ratings.dat"):
        install_zip(other, "ml-1m", tmp_path / "data", md5=None)


def test_no_network_fails_fast_with_what_to_do(tmp_path):
    # Port 9 (discard) on loopback refuses at once, as an offline machine does.
    with pytest.raises(DownloadError) as info:
        download("ml-1m", tmp_path, urls=["http://127.0.0.1:9/ml-1m.zip"], progress=False)
    text = str(info.value)
    assert "could not download ml-1m: http://127.0.0.1:9/ml-1m.zip" in text
    assert "--zip PATH" in text and "--dataset synthetic" in text


def test_unknown_release_name(tmp_path):
    with pytest.raises(DownloadError, match="'ml-2m' is not a MovieLens release"):
        download("ml-2m", tmp_path)


def test_a_local_folder_is_installed_atomically_and_once(tmp_path):
    from conftest import ML1M_MOVIES, ML1M_RATINGS, ML1M_USERS, write_lines

    from lib.download import install_folder
    source = tmp_path / "elsewhere"
    write_lines(source / "ratings.dat", ML1M_RATINGS)
    write_lines(source / "movies.dat", ML1M_MOVIES)
    with pytest.raises(DownloadError, match="elsewhere: has no users.dat"):
        install_folder(source, "ml-1m", tmp_path / "data")
    assert not (tmp_path / "data" / "ml-1m").exists()  # nothing half-copied
    write_lines(source / "users.dat", ML1M_USERS)
    target = install_folder(source, "ml-1m", tmp_path / "data")
    assert (target / "ratings.dat").read_bytes() == (source / "ratings.dat").read_bytes()
    stamp = (target / "ratings.dat").stat().st_mtime_ns
    install_folder(source, "ml-1m", tmp_path / "data")  # identical files: left as they are
    assert (target / "ratings.dat").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["ml-1m"]

"""`skpipe zoo` and `skpipe import NAME|URL`: the listing, and downloads from a local HTTP server
(no network): the cache, the checks, and every failure one line with nothing half-written."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from click.testing import CliRunner

import skpipe
from cli.main import main
from pipeline import SkpipeError
from pipeline.files.download import download, hash_prefix
from pipeline.infer.catalog import CATALOG, HAGRID
from tests.conftest import SHARED_DATA

HAGRID_PTH = SHARED_DATA / "pyskl" / "hagrid.pth"
BODY = b"not really a checkpoint, " * 400


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path
        if path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        elif path == "/huge.pth":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 40))
            self.end_headers()
        elif path == "/truncated.pth":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY) * 2))
            self.end_headers()
            self.wfile.write(BODY)
            self.close_connection = True
        elif path == "/stall.pth":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:100])
            self.wfile.flush()
            time.sleep(3)
        elif path.lstrip("/") in self.files:
            data = self.files[path.lstrip("/")]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture
def server(tmp_path, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("SKPIPE_HOME", str(tmp_path / "home"))
    prefix = hashlib.sha256(BODY).hexdigest()[:8]
    _Handler.files = {f"ok_20200101-{prefix}.pth": BODY, "wrong_20200101-00000000.pth": BODY}
    if HAGRID_PTH.is_file():
        _Handler.files["demo/hagrid.pth"] = HAGRID_PTH.read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_zoo_lists_the_models_with_their_published_top1():
    r = CliRunner().invoke(main, ["zoo"])
    assert r.exit_code == 0, r.output
    assert "89.29" in r.output and "stgcnpp_8xb16" in r.output and "MMAction2" in r.output
    rows = json.loads(CliRunner().invoke(main, ["zoo", "--json"]).output)
    assert len(rows) == len(CATALOG) and all(r["imports"] for r in rows)
    named = {r["name"]: r for r in rows}
    assert named["stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d"]["top1"] == 89.29
    assert named["stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d"]["url"].endswith("-86e1e77a.pth")
    assert named[HAGRID.name]["top1"] is None  # not published: never made up
    ntu120 = json.loads(CliRunner().invoke(main, ["zoo", "--dataset", "ntu120", "--json"]).output)
    assert ntu120 and {r["dataset"] for r in ntu120} == {"NTU120"}
    r = CliRunner().invoke(main, ["zoo", "--dataset", "kinetics"])
    assert r.exit_code == 1 and "NTU60" in r.output and "Traceback" not in r.output
    for e in CATALOG.values():  # the file name's hash prefix is what the download is checked against
        assert e.sha256.startswith(hash_prefix(e.file_name) or e.sha256)


def test_download_caches_and_checks_the_hash_in_the_name(server, tmp_path):
    name = next(n for n in _Handler.files if n.startswith("ok_"))
    seen: list[int] = []
    path = download(f"{server}/{name}", name, hash_prefix(name), progress=lambda d, t: seen.append(d))
    assert path.read_bytes() == BODY and seen[-1] == len(BODY)
    assert path.parent == tmp_path / "home" / "downloads"
    _Handler.files.clear()  # a second call reads the cache, not the server
    assert download(f"{server}/{name}", name, hash_prefix(name)) == path


@pytest.mark.parametrize(("path", "timeout", "says"), [
    ("wrong_20200101-00000000.pth", 30.0, "sha256 begins"),
    ("truncated.pth", 30.0, "run the same command again to resume"),
    ("stall.pth", 0.5, "stalled"),
    ("huge.pth", 30.0, "bytes declared"),
    ("loop", 30.0, "redirect"),
    ("absent.pth", 30.0, "HTTP 404"),
])
def test_each_failed_download_is_one_line_with_nothing_kept(server, tmp_path, path, timeout, says):
    with pytest.raises(SkpipeError, match=says):
        download(f"{server}/{path}", "model.pth", hash_prefix(path), timeout=timeout)
    assert not (tmp_path / "home" / "downloads" / "model.pth").exists()


def test_import_by_url_refuses_a_wrong_hash_in_one_line(server, tmp_path):
    r = CliRunner().invoke(main, ["import", f"{server}/wrong_20200101-00000000.pth", "--out",
                                  str(tmp_path / "run")])
    assert r.exit_code == 1 and "sha256 begins" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run").exists()
    r = CliRunner().invoke(main, ["import", "no-such-model", "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and "skpipe zoo" in r.output


@pytest.mark.skipif(not HAGRID_PTH.is_file(), reason="../shared/data/pyskl (PYSKL's hand model) is absent")
def test_import_by_name_from_a_mirror_equals_the_local_import(server, tmp_path):
    r = CliRunner().invoke(main, ["import", HAGRID.name, "--mirror", server, "--out",
                                  str(tmp_path / "named")])
    assert r.exit_code == 0, r.output
    said = r.output
    config = HAGRID_PTH.parent / "stgcnpp_gesture.py"
    r = CliRunner().invoke(main, ["import", str(HAGRID_PTH), "--config", str(config), "--classes",
                                  "gesture40", "--out", str(tmp_path / "local")])
    assert r.exit_code == 0, r.output
    # the listing's config facts stand in for the .py config: the same assumptions, no more
    assumed = [[line for line in out.splitlines() if "assumed" in line] for out in (said, r.output)]
    assert assumed[0] == assumed[1] and "PYSKL's NTU tests" not in said
    named, local = skpipe.load(tmp_path / "named"), skpipe.load(tmp_path / "local")
    assert named.classes == local.classes and named.card.frames == local.card.frames == 10
    x = np.random.default_rng(0).random((3, 10, 21, 2)).astype(np.float32)
    np.testing.assert_array_equal(named.logits(x, np.full(3, 10)), local.logits(x, np.full(3, 10)))

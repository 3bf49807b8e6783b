"""`python -m data_io.fetch` against a PhysioNet-shaped server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_io import fetch
from data_io.cinc2017 import load_cinc2017


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def physionet_mirror(tmp_path: Path, small_cinc) -> Iterator[str]:
    """A local server laid out like PhysioNet's /content and /files trees for challenge-2017."""
    source, labels = small_cinc
    root = tmp_path / "mirror"
    content = root / "content" / "challenge-2017"
    (content / "1.0.0").mkdir(parents=True)
    (content / "index.html").write_text("<p>Version: 1.0.0</p>")
    (content / "1.0.0" / "index.html").write_text("challenge-2017")
    files = root / "files" / "challenge-2017" / "1.0.0"
    sub = files / "training" / "A00"
    sub.mkdir(parents=True)
    for record in labels:
        for ext in (".hea", ".mat"):
            shutil.copy(source / f"{record}{ext}", sub / f"{record}{ext}")
    (files / "training" / "RECORDS").write_text("".join(f"A00/{r}\n" for r in labels))
    shutil.copy(source / "REFERENCE.csv", files / "REFERENCE-v3.csv")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def test_fetch_downloads_a_loadable_directory(physionet_mirror, small_cinc, tmp_path, capsys):
    _, labels = small_cinc
    dest = tmp_path / "downloaded"
    assert fetch.main(["cinc2017", "--dest", str(dest), "--mirror", physionet_mirror]) == 0
    assert f"downloaded {len(labels)} cinc2017 records" in capsys.readouterr().out
    arrays = load_cinc2017(dest, progress=False)
    assert arrays.record_ids == tuple(sorted(labels))
    assert arrays.quarantined == ()


def test_unreachable_server_fails_fast_with_manual_instructions(tmp_path, capsys):
    # Port 9 (discard) on loopback has no listener here: the connection is refused at once.
    code = fetch.main(["cinc2017", "--dest", str(tmp_path / "d"), "--mirror", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot reach http://127.0.0.1:9" in err
    assert "training2017.zip" in err and "REFERENCE.csv" in err
    assert not (tmp_path / "d").exists()

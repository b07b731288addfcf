"""`phnn download`: resumable HTTP download, verification and atomic extraction, against a local server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from phnn import download
from phnn.cli import main as phnn_main
from phnn.download import fetch

NAME = "L3DAS_Task2_dev.zip"


def make_zip(top: str = "L3DAS_Task2_dev") -> bytes:
    prefix = f"{top}/" if top else ""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}data/split0_ov1_1_A.wav", bytes(range(256)) * 800)
        zf.writestr(f"{prefix}labels/label_split0_ov1_1.csv", "File,Start,End,Class,X,Y,Z\n")
    return buffer.getvalue()


class Server:
    """Serves one payload with Range support; can drop the first connection half-way."""

    def __init__(self, payload: bytes, drop_first: bool = False, record: bytes | None = None) -> None:
        self.payload, self.drop_first, self.ranges, self.record = payload, drop_first, [], record
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/api/record" and server.record is not None:  # a Zenodo record API stand-in
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(server.record)))
                    self.end_headers()
                    self.wfile.write(server.record)
                    return
                if not self.path.startswith(f"/{NAME}"):
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                server.ranges.append(header)
                start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
                body = server.payload[start:]
                self.send_response(206 if header else 200)
                if header:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drop_first:
                    server.drop_first = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[Server] = []

    def start(payload: bytes, drop_first: bool = False, record: bytes | None = None) -> Server:
        servers.append(Server(payload, drop_first, record))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_dropped_connection_is_resumed_and_extracted_atomically(serve, tmp_path: Path) -> None:
    payload = make_zip()
    server = serve(payload, drop_first=True)
    folder = fetch("l3das21", "dev", tmp_path, url_base=server.url, md5=hashlib.md5(payload).hexdigest(),
                   progress=False, backoff=0)
    assert folder == tmp_path / "L3DAS_Task2_dev"
    assert server.ranges == [None, f"bytes={len(payload) // 2}-"]
    assert (folder / "data" / "split0_ov1_1_A.wav").read_bytes() == bytes(range(256)) * 800
    assert sorted(p.name for p in tmp_path.iterdir()) == ["L3DAS_Task2_dev"]  # no archive, .part or temp folder
    assert fetch("l3das21", "dev", tmp_path, url_base=server.url, progress=False) == folder  # already there
    assert len(server.ranges) == 2


def test_part_file_from_an_earlier_run_is_resumed(serve, tmp_path: Path) -> None:
    payload = make_zip(top="")  # archives without the top folder work too
    server = serve(payload)
    (tmp_path / f"{NAME}.part").write_bytes(payload[:1000])
    assert phnn_main(["download", "l3das21", "--set", "dev", "--out", str(tmp_path), "--url-base", server.url,
                      "--md5", hashlib.md5(payload).hexdigest()]) == 0
    assert server.ranges == ["bytes=1000-"]
    assert (tmp_path / "L3DAS_Task2_dev" / "labels" / "label_split0_ov1_1.csv").is_file()


def test_corrupt_archive_is_reported_and_removed(serve, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    payload = bytearray(make_zip())
    payload[200:260] = b"x" * 60  # damage file data: the CRC check catches it
    server = serve(bytes(payload))
    assert phnn_main(["download", "l3das21", "--set", "dev", "--out", str(tmp_path), "--url-base", server.url,
                      "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert f"{NAME} is not verified (--no-verify)" in err and f"{NAME}: corrupt download: member" in err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"corrupt download: md5 [0-9a-f]{32}, expected 0{32}"):
        fetch("l3das21", "dev", tmp_path, url_base=server.url, md5="0" * 32, progress=False)
    serve_garbage = serve(b"this is not a zip file")
    with pytest.raises(ValueError, match="not a valid zip archive"):
        fetch("l3das21", "dev", tmp_path, url_base=serve_garbage.url, progress=False, no_verify=True)


def test_archive_without_the_layout_is_rejected(serve, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("readme.txt", "hello")
    server = serve(buffer.getvalue())
    with pytest.raises(ValueError, match="no L3DAS_Task2_dev/data folder inside"):
        fetch("l3das21", "dev", tmp_path, url_base=server.url, progress=False, no_verify=True)
    assert not (tmp_path / "L3DAS_Task2_dev").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_http_error_and_unknown_set(serve, tmp_path: Path) -> None:
    server = serve(b"")
    with pytest.raises(RuntimeError, match="HTTP 404"):
        fetch("l3das21", "dev", tmp_path, url_base=server.url + "/missing", progress=False, no_verify=True)
    with pytest.raises(ValueError, match="set='eval'"):
        fetch("l3das21", "eval", tmp_path)


def test_md5_with_more_than_one_set_is_a_usage_error(serve, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    server = serve(make_zip())
    code = phnn_main(["download", "l3das21", "--set", "train", "dev", "--out", str(tmp_path), "--url-base", server.url,
                      "--md5", "0" * 32])
    assert code == 2  # the parser's error exit, returned by main like every other exit code
    assert "--md5 checks one archive; give a single --set" in capsys.readouterr().err
    assert server.ranges == [] and list(tmp_path.iterdir()) == []  # nothing downloaded, nothing deleted


def test_existing_folder_without_data_is_reported_not_overwritten(serve, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    payload = make_zip()
    server = serve(payload)
    labels = tmp_path / "L3DAS_Task2_dev" / "labels"
    labels.mkdir(parents=True)
    (labels / "mine.csv").write_text("copied by hand\n")
    args = ["download", "l3das21", "--set", "dev", "--out", str(tmp_path), "--url-base", server.url,
            "--md5", hashlib.md5(payload).hexdigest()]
    assert phnn_main(args) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'L3DAS_Task2_dev'} already exists without a data/ folder (it holds labels)" in err
    assert "move or delete" in err
    assert (labels / "mine.csv").read_text() == "copied by hand\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["L3DAS_Task2_dev", NAME]  # archive kept, no temp folder
    shutil.rmtree(tmp_path / "L3DAS_Task2_dev")
    (tmp_path / "L3DAS_Task2_dev").mkdir()  # an empty folder is fine: replaced by the extracted one
    assert phnn_main(args) == 0
    assert len(server.ranges) == 1  # the kept archive was not downloaded again
    assert (tmp_path / "L3DAS_Task2_dev" / "data" / "split0_ov1_1_A.wav").is_file()


# --- hostile and unverifiable archives (served on 127.0.0.1 only) ------------------------------------------


def test_an_archive_nobody_vouches_for_is_refused_before_downloading(serve, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    server = serve(make_zip())
    args = ["download", "l3das21", "--set", "dev", "--out", str(tmp_path), "--url-base", server.url]
    assert phnn_main(args) == 2
    assert (f"{NAME}: no checksum to verify it against ({server.url} is not the official source); pass --md5 "
            in capsys.readouterr().err)
    assert server.ranges == [] and list(tmp_path.iterdir()) == []
    assert phnn_main([*args, "--no-verify"]) == 0  # the user's explicit choice; said on stderr
    assert "is not verified (--no-verify)" in capsys.readouterr().err


def test_official_source_is_checked_against_the_published_md5(serve, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    payload = make_zip()
    record = {"files": [{"key": NAME, "checksum": f"md5:{hashlib.md5(payload).hexdigest()}"}]}
    server = serve(payload, record=json.dumps(record).encode())
    monkeypatch.setattr(download, "DEFAULT_URL_BASE", server.url)  # this server plays Zenodo
    monkeypatch.setattr(download, "ZENODO_API", f"{server.url}/api/record")
    assert fetch("l3das21", "dev", tmp_path / "ok", url_base=server.url, progress=False).is_dir()

    server.payload = make_zip().replace(b"File,Start", b"File,START")  # tampered on the way: md5 differs
    with pytest.raises(ValueError, match=r"corrupt download: md5 [0-9a-f]{32}, expected [0-9a-f]{32}"):
        fetch("l3das21", "dev", tmp_path / "tampered", url_base=server.url, progress=False)
    assert list((tmp_path / "tampered").iterdir()) == []  # the archive is deleted, nothing extracted

    monkeypatch.setattr(download, "ZENODO_API", f"{server.url}/api/unreachable")  # the record cannot be read
    with pytest.raises(ValueError, match=r"no checksum to verify it against \(Zenodo's record could not be read\)"):
        fetch("l3das21", "dev", tmp_path / "offline", url_base=server.url, progress=False)


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED, links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        zf.writestr("L3DAS_Task2_dev/data/split0_ov1_1_A.wav", b"RIFF" + bytes(100))
        for name, data in members.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(("members", "links", "message"), [
    ({"L3DAS_Task2_dev/data/bomb.wav": bytes(20 << 20)}, (), r"member 'L3DAS_Task2_dev/data/bomb\.wav' expands "
                                                          r"\d+-fold .* more than 100×: a zip bomb\? not extracted"),
    ({"../escaped.txt": b"x"}, (), r"member '\.\./escaped\.txt' would extract outside the destination folder"),
    ({"/tmp/absolute.txt": b"x"}, (), r"member '/tmp/absolute\.txt' would extract outside"),
    ({}, ("L3DAS_Task2_dev/data/link",), r"member 'L3DAS_Task2_dev/data/link' is a symbolic link"),
])
def test_hostile_archives_extract_nothing(serve, tmp_path: Path, members: dict[str, bytes], links: tuple[str, ...],
                                          message: str) -> None:
    payload = zip_of(members, links=links)
    server = serve(payload)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        fetch("l3das21", "dev", out, url_base=server.url, md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert sorted(p.name for p in out.iterdir()) == [NAME]  # no folder, no temporary folder, nothing outside
    assert not (tmp_path / "escaped.txt").exists()


def test_extraction_size_limit_counts_the_bytes_written(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = zip_of({"L3DAS_Task2_dev/data/big.wav": bytes(range(256)) * 4096}, compression=zipfile.ZIP_STORED)
    server = serve(payload)
    md5 = hashlib.md5(payload).hexdigest()
    with pytest.raises(ValueError, match=r"would extract 1048680 bytes, more than the limit of 500000"):
        fetch("l3das21", "dev", tmp_path, url_base=server.url, md5=md5, progress=False, max_bytes=500_000,
              keep_archive=True)
    # sizes that lie (declared small) are caught on the bytes actually written
    monkeypatch.setattr(download, "_check_members", lambda archive, zf, max_bytes: None)
    with pytest.raises(ValueError, match=r"member 'L3DAS_Task2_dev/data/big\.wav' expands past its declared size or "
                                         r"the extraction limit"):
        fetch("l3das21", "dev", tmp_path, url_base=server.url, md5=md5, progress=False, max_bytes=500_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]


def test_extraction_folder_is_private_and_unpredictable(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = make_zip()
    server = serve(payload)
    seen = []
    real = download._extract_member

    def spy(archive, zf, info, root, budget):
        seen.append((root.name, stat.S_IMODE(root.stat().st_mode)))
        return real(archive, zf, info, root, budget)

    monkeypatch.setattr(download, "_extract_member", spy)
    folder = fetch("l3das21", "dev", tmp_path, url_base=server.url, md5=hashlib.md5(payload).hexdigest(),
                   progress=False)
    names = {name for name, _ in seen}
    assert len(names) == 1 and {mode for _, mode in seen} == {0o700}
    name = names.pop()
    assert name.startswith(".L3DAS_Task2_dev.extract-") and name != f".L3DAS_Task2_dev.extract-{os.getpid()}"
    assert stat.S_IMODE(folder.stat().st_mode) != 0o700  # the dataset itself gets the usual mode

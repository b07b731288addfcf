"""``phnn download l3das21``: fetch the official L3DAS21 Task 2 archives and extract them into the layout.

    phnn download l3das21 --set train dev --out data/l3das21

Downloads ``L3DAS_Task2_{train,dev}.zip`` from Zenodo record 4642005 into ``<out>/<name>.part``,
resuming an interrupted transfer with an HTTP Range request (also after a dropped connection within
one run, up to ``--retries`` times).

Every archive is verified before anything is extracted: its md5 must equal ``--md5``, else (official
source only) the one Zenodo's record API publishes for that file. An
archive none of these vouch for (a mirror, or the record cannot be read) is refused unless the user
says ``--no-verify``; the zip's CRCs are checked in every case.

Extraction trusts nothing in the archive: members must stay inside the folder (no absolute paths,
no ``..``, no links), the total uncompressed size must stay under ``max_bytes`` and under
``MAX_RATIO`` times the archive's size on disk (beyond ``RATIO_FLOOR_BYTES``), and each member's
compression ratio (members over 1 MiB) under ``MAX_RATIO`` (zip bombs, whether one large member or
many small ones), counted on the bytes actually written, not only on the sizes the archive declares.
A refused connection fails at once (the server is not there: retrying cannot help); dropped
connections and timeouts are retried with backoff. It goes into a private folder (``tempfile.mkdtemp``, mode 0700,
in ``<out>``), and the finished ``L3DAS_Task2_<set>`` folder is renamed into place, so no
half-extracted folder is ever visible under its final name.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from phnn.bounds import Bound
from phnn.data.l3das21.layout import SPLIT_FOLDERS
from phnn.errors import PHNNError
from phnn.io import check_output

ZENODO_RECORD = "4642005"
DEFAULT_URL_BASE = f"https://zenodo.org/records/{ZENODO_RECORD}/files"
ZENODO_API = f"https://zenodo.org/api/records/{ZENODO_RECORD}"
DATASETS: dict[str, dict[str, str]] = {
    "l3das21": {split: f"{folder}.zip" for split, folder in SPLIT_FOLDERS.items()},
}
CHUNK = 1 << 20
#: uncompressed bytes an archive may extract to (the L3DAS21 Task 2 train set is about 12 GB)
MAX_EXTRACT_BYTES = 64 << 30
#: uncompressed / compressed size of one member (wav and csv compress far less; a zip bomb far more)
MAX_RATIO = 100
MAX_MEMBERS = 100_000
#: an archive may always extract to this much, whatever its size (the total ratio applies beyond it)
RATIO_FLOOR_BYTES = 64 << 20
#: `phnn download` options
MAX_EXTRACT = Bound("a number of bytes", 1, 1 << 50, integer=True)
RETRIES = Bound("a number of retries", 0, 100, integer=True)
_TRANSIENT = (ConnectionError, http.client.IncompleteRead, http.client.HTTPException, socket.timeout,
              urllib.error.URLError)


def archive_url(url_base: str, name: str) -> str:
    """The download URL of archive `name` under `url_base` (Zenodo's `?download=1` form)."""
    return f"{url_base.rstrip('/')}/{name}?download=1"


def zenodo_md5(name: str, timeout: float = 30.0) -> str | None:
    """The md5 Zenodo publishes for ``name`` (``None`` if the record API cannot be read)."""
    try:
        with urllib.request.urlopen(ZENODO_API, timeout=timeout) as response:
            record = json.load(response)
    except (*_TRANSIENT, ValueError):
        return None
    for entry in record.get("files", []):
        checksum = str(entry.get("checksum", ""))
        if entry.get("key") == name and checksum.startswith("md5:"):
            return checksum[4:]
    return None


def download(url: str, target: Path, retries: int = 5, timeout: float = 60.0, progress: bool = True,
             backoff: float = 1.0) -> Path:
    """Download ``url`` to ``target`` through ``target.part``, resuming with HTTP Range when possible."""
    from tqdm.auto import tqdm

    part = target.with_name(target.name + ".part")
    check_output(target)
    check_output(part)
    target.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(desc=target.name, unit="B", unit_scale=True, disable=not progress)
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                resumed = response.status == 206
                if not resumed:
                    have = 0
                length = response.headers.get("Content-Length")
                bar.reset(total=have + int(length) if length is not None else None)
                bar.update(have)
                received = 0
                with open(part, "ab" if resumed else "wb") as handle:
                    while chunk := response.read(CHUNK):
                        handle.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if length is not None and received < int(length):  # the server closed the connection early
                    raise http.client.IncompleteRead(b"", int(length) - received)
            break
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # range past the end: the .part file is already complete
                break
            bar.close()
            raise RuntimeError(f"{url}: HTTP {error.code} {error.reason}") from None
        except _TRANSIENT as error:
            if _refused(error):
                bar.close()
                raise RuntimeError(f"{url}: connection refused (nothing listens there); check --url-base "
                                   "and the network, then run the command again") from None
            attempt += 1
            if attempt > retries:
                bar.close()
                raise RuntimeError(
                    f"{url}: connection failed {attempt} times ({error}); run the command again to resume "
                    f"from {part} ({part.stat().st_size if part.exists() else 0} bytes)"
                ) from None
            time.sleep(min(backoff * 2.0**attempt, 30.0))
    bar.close()
    os.replace(part, target)
    return target


def _refused(error: BaseException) -> bool:
    """A connection the server's host refused (urllib wraps it in a URLError)."""
    reason = getattr(error, "reason", None) if isinstance(error, urllib.error.URLError) else error
    return isinstance(reason, ConnectionRefusedError)


def md5sum(path: Path) -> str:
    """The md5 hex digest of the file at `path`, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(archive: Path, md5: str | None) -> None:
    """md5 (``None`` only after ``--no-verify``) and zip CRCs; a bad archive is removed so that the next
    run downloads it again."""
    problem = None
    if md5 is not None and (actual := md5sum(archive)) != md5.lower():
        problem = f"md5 {actual}, expected {md5.lower()}"
    else:
        try:
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
            if bad is not None:
                problem = f"member {bad} fails its CRC check"
        except zipfile.BadZipFile as error:
            problem = f"not a valid zip archive ({error})"
    if problem is not None:
        archive.unlink(missing_ok=True)
        raise ValueError(f"{archive}: corrupt download: {problem}; it was deleted, run the command again")


def extraction_budget(archive: Path, max_bytes: int) -> int:
    """The most bytes ``archive`` may extract to: ``max_bytes``, and ``MAX_RATIO`` times its size on disk
    (at least ``RATIO_FLOOR_BYTES``): 300 members of 1 MiB of zeros, each under the per-member check,
    compress to a few hundred KB together and are refused here."""
    return min(max_bytes, max(MAX_RATIO * archive.stat().st_size, RATIO_FLOOR_BYTES))


def _check_members(archive: Path, zf: zipfile.ZipFile, max_bytes: int) -> None:
    """Refuse, before extracting anything, members that leave the folder, links, and declared sizes
    over the limits (the sizes are checked again on the bytes written)."""
    members = zf.infolist()
    if len(members) > MAX_MEMBERS:
        raise ValueError(f"{archive}: {len(members)} members, more than the {MAX_MEMBERS} allowed; not extracted")
    total = 0
    for info in members:
        name = info.filename
        parts = Path(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and parts[0].endswith(":")):
            raise ValueError(f"{archive}: member {name!r} would extract outside the destination folder; not extracted")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ValueError(f"{archive}: member {name!r} is a symbolic link; not extracted")
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > CHUNK:
            raise ValueError(f"{archive}: member {name!r} expands "
                             f"{info.file_size / max(info.compress_size, 1):.0f}-fold "
                             f"({info.compress_size} → {info.file_size} bytes), more than {MAX_RATIO}×: a zip bomb? "
                             f"not extracted")
        total += info.file_size
    if total > max_bytes:
        raise ValueError(f"{archive}: would extract {total} bytes, more than the limit of {max_bytes}; not extracted "
                         f"(raise --max-extract-bytes if the archive is trusted)")
    budget = extraction_budget(archive, max_bytes)
    if total > budget:
        raise ValueError(f"{archive}: would extract {total} bytes, more than {MAX_RATIO}× its "
                         f"{archive.stat().st_size} bytes on disk: a zip bomb? not extracted")


def _extract_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path, budget: int) -> int:
    """Stream one member into ``root``, counting the bytes written; returns them."""
    target = root / info.filename
    if not target.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{archive}: member {info.filename!r} would extract outside the destination folder; "
                         "not extracted")
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > info.file_size or written > budget:
                raise ValueError(f"{archive}: member {info.filename!r} expands past its declared size or the "
                                 f"extraction limit; not extracted")
            sink.write(chunk)
    return written


def extract(archive: Path, out: Path, folder_name: str, max_bytes: int = MAX_EXTRACT_BYTES) -> Path:
    """Extract into a private temporary folder in ``out``, then rename ``folder_name`` into place.

    ``out/folder_name`` must be absent or empty: a non-empty folder without ``data/`` (e.g. only
    ``labels/`` copied by hand) is a ValueError, checked before extracting anything."""
    final = out / folder_name
    if final.exists() and not (final.is_dir() and not any(final.iterdir())):  # os.replace needs it absent or empty
        holds = f" (it holds {', '.join(sorted(p.name for p in final.iterdir())[:5])})" if final.is_dir() else ""
        raise ValueError(
            f"{final} already exists without a data/ folder{holds}, so {archive.name} is not extracted over it; "
            f"move or delete {final} and run the command again (the archive {archive} is kept, so it is not "
            f"downloaded again), then put your own files back"
        )
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder_name}.extract-", dir=out))
    try:
        with zipfile.ZipFile(archive) as zf:
            _check_members(archive, zf, max_bytes)
            budget = extraction_budget(archive, max_bytes)
            for info in zf.infolist():
                budget -= _extract_member(archive, zf, info, tmp, budget)
        source = tmp / folder_name if (tmp / folder_name).is_dir() else tmp
        if not (source / "data").is_dir():
            raise ValueError(f"{archive}: no {folder_name}/data folder inside; expected the L3DAS21 Task 2 layout")
        source.chmod(0o777 & ~_umask())  # mkdtemp's folder is private (0700); the dataset gets the usual mode
        os.replace(source, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def expected_md5(name: str, url_base: str, md5: str | None, no_verify: bool) -> str | None:
    """The md5 to check ``name`` against (see the module docstring); None only with ``no_verify``."""
    if md5 is not None:
        return md5
    if url_base == DEFAULT_URL_BASE and (published := zenodo_md5(name)) is not None:
        return published
    if no_verify:
        return None
    official = url_base == DEFAULT_URL_BASE
    where = "Zenodo's record could not be read" if official else f"{url_base} is not the official source"
    raise ValueError(f"{name}: no checksum to verify it against ({where}); pass --md5 <md5 from "
                     f"https://zenodo.org/records/{ZENODO_RECORD}> or, to accept it unverified, --no-verify")


def fetch(dataset: str, split: str, out: str | Path, url_base: str = DEFAULT_URL_BASE, md5: str | None = None,
          keep_archive: bool = False, retries: int = 5, progress: bool = True, backoff: float = 1.0,
          no_verify: bool = False, max_bytes: int = MAX_EXTRACT_BYTES) -> Path:
    """Download, verify and extract one archive; returns the split folder (already there: nothing to do)."""
    if dataset not in DATASETS or split not in DATASETS[dataset]:
        raise ValueError(f"dataset={dataset!r}, set={split!r}: expected one of "
                         f"{ {d: sorted(s) for d, s in DATASETS.items()} }")
    out = Path(out)
    name = DATASETS[dataset][split]
    folder_name = name.removesuffix(".zip")
    if (out / folder_name / "data").is_dir():
        return out / folder_name
    archive = out / name
    md5 = expected_md5(name, url_base, md5, no_verify)  # before downloading: refused early, nothing fetched
    if not archive.exists():
        download(archive_url(url_base, name), archive, retries=retries, progress=progress, backoff=backoff)
    if md5 is None:
        print(f"phnn download: warning: {archive} is not verified (--no-verify); only its CRCs are checked",
              file=sys.stderr)
    verify(archive, md5)
    folder = extract(archive, out, folder_name, max_bytes)
    if not keep_archive:
        archive.unlink()
    return folder


def main(argv: list[str] | None = None) -> int:
    """Download and unpack the L3DAS21 Task 2 data."""
    parser = argparse.ArgumentParser(prog="phnn download", description="Download a public dataset into its layout.")
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--set", dest="sets", nargs="+", choices=("train", "dev"), default=["train", "dev"])
    parser.add_argument("--out", type=Path, required=True, help="dataset root (becomes data.root)")
    parser.add_argument("--url-base", default=DEFAULT_URL_BASE, help="where the archives are (a mirror)")
    parser.add_argument("--md5", default=None, help="expected md5 (with a single --set; default: the official one)")
    parser.add_argument("--no-verify", action="store_true",
                        help="accept an archive whose md5 is not known (a mirror, or Zenodo unreachable); "
                             "CRCs still checked")
    parser.add_argument("--max-extract-bytes", type=int, default=MAX_EXTRACT_BYTES,
                        help=f"refuse archives that would extract to more (default {MAX_EXTRACT_BYTES})")
    parser.add_argument("--keep-archive", action="store_true", help="keep the .zip after extraction")
    parser.add_argument("--retries", type=int, default=5, help="reconnections per archive after a dropped transfer")
    args = parser.parse_args(argv)
    MAX_EXTRACT.check(args.max_extract_bytes, "--max-extract-bytes")
    RETRIES.check(args.retries, "--retries")
    if args.md5 is not None and len(set(args.sets)) > 1:
        parser.error(f"--md5 checks one archive; give a single --set (got --set {' '.join(args.sets)})")
    for split in args.sets:
        try:
            folder = fetch(args.dataset, split, args.out, args.url_base, args.md5, args.keep_archive, args.retries,
                           no_verify=args.no_verify, max_bytes=args.max_extract_bytes)
        except RuntimeError as error:  # a transfer that failed: a user-facing failure like a bad archive
            raise PHNNError(str(error)) from error
        print(f"{args.dataset} {split}: {folder}")
    return 0

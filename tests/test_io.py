"""Atomic writes keep the old file whole when the writer fails and leave no temporary file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activelab._io import atomic_path, atomic_write_bytes, atomic_write_text


def test_text_replaces_whole_and_leaves_only_target(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "results.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "nouveau é")
    assert target.read_text(encoding="utf-8") == "nouveau é"
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_bytes_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    data = bytes(range(256)) * 4096
    atomic_write_bytes(target, data)
    assert target.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]


def test_writer_that_raises_keeps_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old model")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a mod")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_writer_that_raises_before_creating_anything_leaves_no_target(tmp_path: Path) -> None:
    target = tmp_path / "index.faiss"
    with pytest.raises(KeyError), atomic_path(target):
        raise KeyError("x")
    assert list(tmp_path.iterdir()) == []


def test_temp_path_is_beside_target_and_keeps_its_suffix(tmp_path: Path) -> None:
    target = tmp_path / "oof.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.suffix == ".npz"
        assert tmp.name.startswith(".oof.npz.")
        np.savez(tmp, probs=np.arange(3))
        assert not target.exists()
    with np.load(target) as z:
        assert z["probs"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["oof.npz"]

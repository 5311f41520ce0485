"""What the app needs to serve an imported file safely: its media type and a verified read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from PIL import Image

from activelab.data.images import REJECTION_REASONS, detect_format, media_type, read_verified
from activelab.exceptions import ImageRejected


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "x.html"  # the name lies; the header does not
    Image.new("RGB", (4, 4), (1, 2, 3)).save(path, format="PNG")
    return path


def _stored(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    return {"n_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_media_type_only_for_raster_formats() -> None:
    assert media_type("PNG") == "image/png" and media_type("JPEG") == "image/jpeg"
    assert media_type("WEBP") == "image/webp" and media_type("MPO") == "image/jpeg"
    assert media_type(None) is None and media_type("SVG") is None and media_type("HTML") is None
    assert media_type("TIFF") is None  # Pillow reads it, browsers do not show it


def test_detect_format_reads_the_header_not_the_name(png: Path, tmp_path: Path) -> None:
    assert detect_format(png) == "PNG"
    svg = tmp_path / "a.png"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    assert detect_format(svg) is None
    assert detect_format(tmp_path / "missing.png") is None


def test_read_verified_returns_the_imported_bytes(png: Path) -> None:
    assert read_verified(png, **_stored(png)) == png.read_bytes()  # type: ignore[arg-type]


def test_changed_content_of_the_same_size_is_refused(png: Path) -> None:
    stored = _stored(png)
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF
    png.write_bytes(bytes(data))
    with pytest.raises(ImageRejected) as err:
        read_verified(png, **stored)  # type: ignore[arg-type]
    assert err.value.reason == "changed_file" and "changed_file" in REJECTION_REASONS


def test_file_replaced_by_a_symlink_is_refused(png: Path, tmp_path: Path) -> None:
    stored = _stored(png)
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    png.unlink()
    png.symlink_to(secret)
    with pytest.raises(ImageRejected) as err:
        read_verified(png, **stored)  # type: ignore[arg-type]
    assert err.value.reason == "changed_file"


def test_file_replaced_by_a_folder_or_removed(png: Path) -> None:
    stored = _stored(png)
    png.unlink()
    with pytest.raises(ImageRejected) as err:
        read_verified(png, **stored)  # type: ignore[arg-type]
    assert err.value.reason == "missing_file"
    png.mkdir()
    with pytest.raises(ImageRejected) as err:
        read_verified(png, **stored)  # type: ignore[arg-type]
    assert err.value.reason == "not_a_file"


def test_fifo_in_place_of_the_file_is_refused_without_blocking(png: Path) -> None:
    stored = _stored(png)
    png.unlink()
    os.mkfifo(png)
    with pytest.raises(ImageRejected) as err:
        read_verified(png, **stored)  # type: ignore[arg-type]
    assert err.value.reason == "not_a_file"

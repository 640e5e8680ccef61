"""How the PyTorch classifier's scripts read images (Pillow only, so no torch needed here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from gt_toolkit.sagemaker.scripts.pytorch_classifier.image_io import (
    read_rgb,
    require_codecs,
    rgb_image,
    unreadable_images,
)


def _gray(value: int) -> np.ndarray:
    return np.full((8, 8), value, dtype=np.uint8)


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("L", lambda: Image.fromarray(_gray(100))),
        ("I;16", lambda: Image.fromarray(_gray(100).astype(np.uint16) * 257)),
        ("I", lambda: Image.fromarray(_gray(100).astype(np.int32) * 257)),
        ("CMYK", lambda: Image.fromarray(_gray(100)).convert("RGB").convert("CMYK")),
        ("P", lambda: Image.fromarray(_gray(100)).convert("RGB").convert("P")),
        ("RGBA", lambda: Image.fromarray(_gray(100)).convert("RGBA")),
        ("LA", lambda: Image.fromarray(_gray(100)).convert("LA")),
    ],
)
def test_every_mode_reads_as_the_same_8_bit_rgb(
    tmp_path: Path, mode: str, make: Callable[[], Image.Image]
) -> None:
    """A 16-bit grayscale PNG used to come out white (Pillow clips 25700 to 255)."""
    img = make()
    assert img.mode == mode
    assert abs(float(np.asarray(rgb_image(img)).mean()) - 100) <= 2
    if mode != "I":  # Pillow writes no PNG from a 32-bit image (it reads 16-bit ones as I;16)
        path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
        img.save(path)
        rgb = read_rgb(path)
        assert rgb.mode == "RGB"
        assert abs(float(np.asarray(rgb).mean()) - 100) <= 2


def test_a_sixteen_bit_png_keeps_its_range(tmp_path: Path) -> None:
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    values = np.asarray(read_rgb(tmp_path / "ramp.png"))[..., 0]
    assert values.min() == 0
    assert values.max() == 63 * 1024 // 256
    assert (np.diff(values.ravel().astype(int)) > 0).all()


def test_unreadable_images_are_all_named(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(_gray(50)).convert("RGB").save(good)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    html = tmp_path / "page.png"
    html.write_text("<html>403 Forbidden</html>")
    problems = unreadable_images([good, empty, html])
    assert [p.split(":")[0] for p in problems] == [str(empty), str(html)]


def test_a_truncated_image_fails_with_its_path(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(whole)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 8 // 10])
    assert unreadable_images([cut]) == []  # the header is fine: only decoding finds it
    with pytest.raises(OSError, match=r"cut\.jpg"):
        read_rgb(cut)


def test_the_endpoint_refuses_to_start_without_a_jpeg_or_png_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Pillow built without libjpeg: model_fn fails at start-up, not each request as a 400."""
    require_codecs()  # this Pillow decodes both
    monkeypatch.setattr(features, "check_codec", lambda codec: codec != "jpg")
    with pytest.raises(RuntimeError, match="cannot decode JPEG: reinstall Pillow"):
        require_codecs()
    monkeypatch.setattr(features, "check_codec", lambda codec: False)
    with pytest.raises(RuntimeError, match="cannot decode JPEG or PNG"):
        require_codecs()

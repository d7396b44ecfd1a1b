"""Glyphs: 28x28 images of the 26 capital letters, rendered from the TrueType fonts matplotlib ships.

No download: the fonts are the files in ``matplotlib.get_data_path()/fonts/ttf`` (:data:`FONTS`, 22 of
them: DejaVu Sans, Sans Mono and Serif in their four styles, STIX General in four, and Computer Modern
roman, bold, italic, sans, typewriter and math italic). Image ``k`` of letter ``c`` (``c = 0`` for A ..
``25`` for Z) is made from its own random stream, ``numpy.random.default_rng((seed, c, k))``, so it does
not depend on how many images are made, and the same ``(seed, c, k)`` always gives the same image with
the same Pillow, FreeType and matplotlib fonts. In this order it draws:

1. a font, uniformly from :data:`FONTS`, and a stroke width of 0, 1 or 2 pixels (Pillow's
   ``stroke_width``, at the 64-pixel rendering size: thin to bold strokes);
2. the letter is drawn white on black at font size 64 on a 128x128 canvas and cropped to its ink;
3. an affine map from that crop to an 84x84 canvas (3 x 28): the crop's longer side scaled to 0.7 of the
   canvas times ``U(0.8, 1.1)``, a shear ``x += U(-0.3, 0.3) y``, a rotation by ``U(-15, 15)`` degrees,
   a shift of ``U(-0.08, 0.08)`` of the side in each direction (bilinear resampling);
4. a box-filter downsampling to 28x28 (each output pixel the mean of 3x3), pixels scaled to [0, 1];
5. an ink intensity ``U(0.7, 1)`` (the image is multiplied by it) and Gaussian pixel noise of standard
   deviation ``U(0, 0.08)``, clipped to [0, 1].

:func:`load_glyphs` makes ``per_class`` images of each letter (the studies: 200, so 5,200 images) and
caches them in ``cache_dir`` (8 s to render on one core; the cache file's name holds the recipe's
version and those of Pillow and matplotlib).
"""

from __future__ import annotations

import functools
import os
import string
from pathlib import Path

import numpy as np
import torch
from _data_cache import cached
from torch import Tensor

LETTERS = string.ascii_uppercase
#: The fonts, by file name in matplotlib's ``fonts/ttf`` folder: every one has all 26 capitals.
FONTS = (
    *(f"DejaVuSans{style}.ttf" for style in ("", "-Bold", "-Oblique", "-BoldOblique")),
    *(f"DejaVuSansMono{style}.ttf" for style in ("", "-Bold", "-Oblique", "-BoldOblique")),
    *(f"DejaVuSerif{style}.ttf" for style in ("", "-Bold", "-Italic", "-BoldItalic")),
    *(f"STIXGeneral{style}.ttf" for style in ("", "Bol", "Italic", "BolIta")),
    *(f"cm{name}10.ttf" for name in ("r", "b", "ti", "ss", "tt", "mi")),
)
SIZE = 28
RECIPE_VERSION = 1
_RENDER, _CANVAS, _OVERSAMPLE = 64, 128, 3


def font_path(name: str) -> Path:
    """The path of one of matplotlib's bundled fonts."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


@functools.cache
def _font(name: str):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(name)), _RENDER)


def _ink(letter: str, font_name: str, stroke: int):
    """The letter drawn white on black, cropped to its ink."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (_CANVAS, _CANVAS), 0)
    ImageDraw.Draw(canvas).text(
        (_CANVAS / 2, _CANVAS / 2), letter, fill=255, font=_font(font_name), anchor="mm",
        stroke_width=stroke, stroke_fill=255,
    )  # fmt: skip
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"Font {font_name} drew no ink for {letter!r}.")
    return canvas.crop(box)


def render_glyph(label: int, index: int, seed: int = 0) -> np.ndarray:
    """Image ``index`` of letter ``label`` (0 = A), float32 ``(28, 28)`` in [0, 1]; see the module docstring."""
    from PIL import Image

    if not 0 <= label < len(LETTERS):
        raise ValueError(f"`label` must be in 0..{len(LETTERS) - 1}, got {label}.")
    rng = np.random.default_rng((seed, label, index))
    font_name = FONTS[int(rng.integers(len(FONTS)))]
    ink = _ink(LETTERS[label], font_name, int(rng.integers(0, 3)))
    side = SIZE * _OVERSAMPLE
    scale = 0.7 * side / max(ink.size) * rng.uniform(0.8, 1.1)
    shear = rng.uniform(-0.3, 0.3)
    angle = np.radians(rng.uniform(-15.0, 15.0))
    shift = rng.uniform(-0.08, 0.08, size=2) * side
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = scale * rotation @ np.array([[1.0, shear], [0.0, 1.0]])  # crop -> canvas, about the centres
    inverse = np.linalg.inv(forward)
    centre_in, centre_out = np.array(ink.size) / 2, np.full(2, side / 2) + shift
    offset = centre_in - inverse @ centre_out
    coefficients = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    big = ink.transform((side, side), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR)
    pixels = np.asarray(big, dtype=np.float64).reshape(SIZE, _OVERSAMPLE, SIZE, _OVERSAMPLE).mean((1, 3)) / 255
    pixels = pixels * rng.uniform(0.7, 1.0) + rng.normal(0.0, rng.uniform(0.0, 0.08), size=pixels.shape)
    return np.clip(pixels, 0.0, 1.0).astype(np.float32)


def render_glyphs(per_class: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``per_class`` images of each letter: float32 ``(26 * per_class, 1, 28, 28)`` in [0, 1], int64 labels.

    Ordered by letter, then by index. Raises ``ValueError`` if ``per_class < 1``.
    """
    if per_class < 1:
        raise ValueError(f"`per_class` must be >= 1, got {per_class}.")
    images = [render_glyph(label, k, seed) for label in range(len(LETTERS)) for k in range(per_class)]
    labels = torch.arange(len(LETTERS)).repeat_interleave(per_class)
    return torch.from_numpy(np.stack(images))[:, None], labels


def load_glyphs(cache_dir: Path | None, per_class: int = 200, seed: int = 0) -> tuple[Tensor, Tensor]:
    """:func:`render_glyphs`, kept in ``cache_dir`` (``None``: no cache) after the first call."""
    import matplotlib
    import PIL

    key = f"glyphs-v{RECIPE_VERSION}-{per_class}x26-seed{seed}-pillow{PIL.__version__}-mpl{matplotlib.__version__}"
    return cached(cache_dir, key, lambda: render_glyphs(per_class, seed))


if __name__ == "__main__":  # a contact sheet: python examples/_data_glyphs.py sheet.png
    import sys

    from PIL import Image

    images, _ = render_glyphs(8)
    grid = images[:, 0].reshape(26, 8, SIZE, SIZE).permute(1, 2, 0, 3).reshape(8 * SIZE, 26 * SIZE)
    Image.fromarray((grid.numpy() * 255).astype(np.uint8)).save(sys.argv[1] if len(sys.argv) > 1 else "glyphs.png")
    print(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "glyphs.png"))

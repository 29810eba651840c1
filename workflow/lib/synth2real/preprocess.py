"""The one path from a decoded image to its stored form, for real and synthetic images alike.

Real shards (``data/``) and synthetic shards (``generate/``) both call :func:`store_image`, so
a real and a generated picture of the same pixels are stored as the same bytes: same resize
filter, same crop, same codec. Otherwise the frequency probes and the spectra, which look at
exactly the band a filter or codec changes, would measure a difference of processing on top of
any difference of generator.

What the stored form keeps of its source is the source's own business: ILSVRC images are
JPEGs, so real images carry the JPEG artifacts of their source (8x8 blocks, lost fine detail)
into the shards, and no re-encoding can remove them. Generated images start lossless unless
``jpeg_quality`` asks for the official code's JPEG at the generation resolution.

Jobs-only (it imports PIL): the Snakefile never imports it.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from synth2real.shards import encode_png

#: The resize filter of every stored image. BICUBIC is the official code's filter (PIL's default
#: and torchvision's ``InterpolationMode.BICUBIC``). PIL widens its support by the reduction
#: factor, so it is antialiased: a naive resize would alias high frequencies into the very band
#: the frequency probes measure.
RESAMPLE = Image.Resampling.BICUBIC

ImageLike = np.ndarray | Image.Image | str | os.PathLike[str]


def _open_rgb(image: ImageLike) -> Image.Image:
    """An RGB PIL image of an array (HxW grey or HxWx3 uint8), a PIL image or an image file."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {image.dtype}")
        return Image.fromarray(image).convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")  # ILSVRC holds a few greyscale and CMYK JPEGs
    with Image.open(image) as im:
        return im.convert("RGB")


def jpeg_roundtrip(image: Image.Image, quality: int) -> Image.Image:
    """``image`` after saving it as JPEG at ``quality`` (PIL's other defaults) and decoding it:
    what the official ``gen_images.py`` kept of a generated image."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=int(quality))
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return im.convert("RGB")


def stored_pixels(image: ImageLike, size: int, jpeg_quality: int | None = None) -> np.ndarray:
    """The ``size`` x ``size`` RGB uint8 pixels :func:`store_image` stores for ``image``.

    The short side is resized to ``size`` with :data:`RESAMPLE` (no ``reducing_gap``: exact
    resampling keeps pixels independent of an approximation), then the centre is cropped, so
    every image has the same shape and a split stacks into one array; the aspect ratio is kept.
    An image already ``size`` px on its short side is only cropped, and a square one at ``size``
    passes unchanged (the digits are upscaled to their stored size before they get here).
    ``jpeg_quality`` (None: off) first round-trips the image through JPEG at its own resolution.
    """
    im = _open_rgb(image)
    if jpeg_quality is not None:
        im = jpeg_roundtrip(im, jpeg_quality)
    w, h = im.size
    if w <= h:
        new = (size, max(size, round(h * size / w)))
    else:
        new = (max(size, round(w * size / h)), size)
    if new != (w, h):
        im = im.resize(new, RESAMPLE)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def store_image(image: ImageLike, size: int, jpeg_quality: int | None = None) -> bytes:
    """The stored bytes of ``image``: :func:`stored_pixels`, encoded as the dataset contract's
    lossless PNG (:func:`synth2real.shards.encode_png`)."""
    return encode_png(stored_pixels(image, size, jpeg_quality))

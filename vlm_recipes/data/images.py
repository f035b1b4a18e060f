"""Images as training rows hold them: decoded, size-checked and converted to RGB, with errors that name the file.

`datasets` decodes images when a row is read, so a corrupt file fails inside the data loader with PIL's message and
no row name. The recipes therefore keep the training images undecoded ({path, bytes}) and decode them here, in the
collator, where the row is known: the pixel count is read from the header and refused before the pixel data is
decoded (huge images, decompression bombs), modes that convert (RGBA, LA, P, L, CMYK, ...) become RGB, and modes
without an obvious RGB meaning (16-bit, float) are refused.
"""

from __future__ import annotations

import io
from pathlib import Path

from datasets import Dataset
from datasets import Image as ImageFeature
from datasets import List as ListFeature
from PIL import Image


class ImageError(ValueError):
    """An image that cannot be used; the message names the file (when known) and the fix, `kind` the defect (one of
    `IMAGE_DEFECTS`: preflight counts bad rows by it)."""

    def __init__(self, message: str, kind: str = "unreadable image"):
        super().__init__(message)
        self.kind = kind


IMAGE_DEFECTS = (
    "missing image file",
    "empty image file",
    "unreadable image",
    "corrupt image data",
    "image over max_image_pixels",
    "unsupported image mode",
)


# Modes PIL converts to RGB without losing meaning (alpha is composited on white, as transformers does).
CONVERTIBLE_MODES = frozenset(
    {"RGB", "RGBA", "RGBa", "RGBX", "LA", "La", "L", "1", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"}
)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def unsupported_image(width: int, height: int, mode: str, max_pixels: int | None) -> tuple[str, str] | None:
    """Why an image of this size and mode cannot be trained on, and the kind of defect (None: it can, after
    `to_rgb`)."""
    if max_pixels is not None and width * height > max_pixels:
        return (
            f"image of {width}x{height} = {width * height:,} pixels exceeds max_image_pixels={max_pixels:,}; "
            "downscale it, or raise max_image_pixels if you trust the file",
            "image over max_image_pixels",
        )
    if mode not in CONVERTIBLE_MODES:
        return (
            f"image mode {mode!r} cannot be converted to RGB without choosing a tone mapping (16-bit/float data); "
            "convert it to 8-bit RGB first",
            "unsupported image mode",
        )
    return None


def to_rgb(image):
    """The image as RGB: alpha composited on white, palette/greyscale/CMYK converted."""
    if image.mode == "RGB":
        return image
    if image.mode in _ALPHA_MODES or "transparency" in image.info:  # e.g. a palette PNG with a transparent index
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def undecoded(ds: Dataset) -> Dataset:
    """`ds` with its image column(s) left as {path, bytes}, so decoding errors can name the file."""
    for col in ("images", "image"):
        feature = ds.features.get(col)
        if isinstance(feature, ImageFeature):
            ds = ds.cast_column(col, ImageFeature(decode=False))
        elif isinstance(feature, ListFeature) and isinstance(feature.feature, ImageFeature):
            ds = ds.cast_column(col, ListFeature(ImageFeature(decode=False)))
    return ds


def _named(source: str | None, message: str) -> str:
    return f"{source}: {message}" if source else message


def open_image(value, max_pixels: int | None):
    """Decode one image value (a PIL image, or datasets' undecoded {path, bytes}) and check it; not yet RGB.

    Size and mode are read from the header and refused before the pixel data is decoded.
    """
    if isinstance(value, str):  # a path column that was never cast to datasets.Image
        value = {"path": value, "bytes": None}
    if isinstance(value, Image.Image):
        image, source = value, getattr(value, "filename", None)
    else:
        path, data = value.get("path"), value.get("bytes")
        source = path
        if data is None:
            if path is None:
                raise ImageError("image entry with neither bytes nor a path; fix the data", "missing image file")
            file = Path(path)
            if not file.is_file():
                raise ImageError(f"{path}: image file not found; fix the path or remove the row", "missing image file")
            if file.stat().st_size == 0:
                raise ImageError(
                    f"{path}: empty (0-byte) image file; replace the file or remove the row", "empty image file"
                )
            data = file.read_bytes()
        elif len(data) == 0:
            raise ImageError(
                f"{source or 'embedded image'}: empty (0-byte) image; replace it or remove the row", "empty image file"
            )
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as err:
            raise ImageError(
                _named(
                    source,
                    f"refused before decoding ({err}); downscale it, or raise max_image_pixels if you trust the file",
                ),
                "image over max_image_pixels",
            ) from err
        except Image.UnidentifiedImageError as err:
            raise ImageError(
                _named(
                    source,
                    "not a readable image (unknown format or corrupt header); replace the file or remove the row",
                )
            ) from err
        except Exception as err:  # OSError, SyntaxError, ... from a damaged header
            raise ImageError(
                _named(source, f"not a readable image ({err}); replace the file or remove the row")
            ) from err
    why = unsupported_image(image.width, image.height, image.mode, max_pixels)
    if why:
        raise ImageError(_named(source, why[0]), why[1])
    try:
        image.load()
    except Exception as err:  # truncated or corrupt pixel data
        raise ImageError(
            _named(source, f"corrupt image data ({err}); replace the file or remove the row"), "corrupt image data"
        ) from err
    if isinstance(value, dict) and value.get("path"):
        image.filename = value["path"]  # so later errors name the file too
    return image

"""The one image decoder of the package: files and bytes to uint8 RGB arrays.

``keras-resblocks predict`` and the image folders of training and evaluation read
images through :func:`decode_image`, so a 16-bit or floating-point image means the
same pixels everywhere.
"""

from __future__ import annotations

import io
import os

MAX_IMAGE_PIXELS = 50_000_000  # about 7,000 x 7,000: larger images are refused before decoding

# Modes Pillow converts to 8-bit RGB itself; the others (16/32-bit integers, floats) hold
# one channel of wider values and are scaled here.
_EIGHT_BIT_MODES = ("RGB", "L", "P", "RGBA", "LA", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV")


class ImageError(ValueError):
    """An image that cannot be read: missing, not an image, broken or too large."""


def _open_regular(path, where):
    # A FIFO, a device or a directory is refused before a byte is read: nothing can hang.
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ImageError(f"{where}: is {kind}, not an image")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def decode_image(source, where=None, size=None):
    """An image as a uint8 RGB array, resized to ``size`` ((height, width)) if given.

    ``source`` is a path or the file's bytes; ``where`` names it in errors (default:
    the path). Any format Pillow reads; grey, palette and RGBA images are converted
    to RGB, and 16-bit, 32-bit integer and floating-point images are scaled to
    0..255 (not clipped): 16-bit by 255/65535, floats in 0..1 by 255. An image of
    more than :data:`MAX_IMAGE_PIXELS` pixels is refused from its header, before it
    is decoded. Failures raise :class:`ImageError` in one line.

    Example:

    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from keras_resblocks.images import decode_image
    >>> path = tempfile.mkdtemp() + "/grey.png"
    >>> Image.fromarray(np.zeros((10, 20), "uint8")).save(path)
    >>> decode_image(path, size=(32, 32)).shape
    (32, 32, 3)
    >>> Image.fromarray(np.full((4, 4), 65535, "uint16")).save(path)  # 16-bit grey
    >>> int(decode_image(path).max())
    255
    >>> decode_image(b"not an image", where="x.png")
    Traceback (most recent call last):
    ...
    keras_resblocks.images.ImageError: x.png: not a readable image (UnidentifiedImageError)
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if where is None:
        where = "image bytes" if isinstance(source, bytes) else os.fspath(source)
    try:
        with Image.open(
            io.BytesIO(source) if isinstance(source, bytes) else _open_regular(source, where)
        ) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageError(
                    f"{where}: {width}x{height} = {width * height:,} pixels, beyond the limit of "
                    f"{MAX_IMAGE_PIXELS:,}; resize it first"
                )
            if image.mode in _EIGHT_BIT_MODES:
                pixels = np.asarray(image.convert("RGB"), dtype="uint8")
            else:
                values = np.asarray(image, dtype="float64")
                if image.mode == "F":
                    top = 1.0 if np.nanmax(values, initial=0.0) <= 1.0 else 255.0
                else:
                    top = 65535.0 if np.max(values, initial=0) <= 65535 else float(2**32 - 1)
                grey = np.clip(np.nan_to_num(values) * (255.0 / top), 0, 255).round()
                pixels = np.repeat(grey.astype("uint8")[..., None], 3, axis=-1)
            if size is not None and all(size) and pixels.shape[:2] != tuple(size):
                pixels = np.asarray(
                    Image.fromarray(pixels).resize((size[1], size[0]), Image.Resampling.BILINEAR),
                    dtype="uint8",
                )
            return pixels
    except FileNotFoundError:
        raise ImageError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{where}: is a directory, not an image") from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"{where}: more pixels than the limit of {MAX_IMAGE_PIXELS:,}; resize it first"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        if isinstance(e, ImageError):
            raise
        raise ImageError(f"{where}: not a readable image ({type(e).__name__})") from None

"""Image files a user names on the command line (``botnet predict``, ``botnet detect predict``): each one is read, or
answered by a :class:`~botnet.data.folder.BadSample` that names it as given and says why, so one bad file never
stops the others.

A file is refused when it is a URL, missing, not a regular file (a directory, FIFO, socket or device: never opened),
of a type the command does not take (``extensions``), larger than ``max_pixels``, or not decodable
(:func:`~botnet.data.folder.read_rgb`). ``botnet predict`` takes the extensions an image-folder dataset collects
(:data:`TRAINING_EXTENSIONS`): a file of another type, though Pillow may read it (``.gif``), is one training never
learns from, so it is refused by name rather than classified.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from PIL import Image
from torch import Tensor
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from .folder import DEFAULT_MAX_PIXELS, UNREADABLE_IMAGE_ERRORS, URL, BadSample, read_rgb
from .scan import file_kind

TRAINING_EXTENSIONS: tuple[str, ...] = IMG_EXTENSIONS  # what ImageFolderDataset collects (any case)


def read_image(
    given: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS, extensions: tuple[str, ...] | None = None
) -> Tensor | BadSample:
    """The image file ``given`` as a uint8 ``(3, H, W)`` tensor, or a :class:`BadSample` with ``path`` as given and
    the reason it cannot be read (without the path: ``"cannot identify image file (...)"``).

    Args:
        given: the path as the user wrote it.
        max_pixels: passed to :func:`~botnet.data.folder.read_rgb`.
        extensions: the file types taken (lowercase, with the dot); ``None`` takes every type Pillow reads.
    """
    path = str(given)
    if URL.match(path):
        return BadSample(path, "is a URL: only local image files are read; download it first")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return BadSample(path, "does not exist")
    except OSError as err:  # a permission error, a name too long, a loop of links
        return BadSample(path, f"cannot be read: {err.strerror or err}")
    if stat.S_ISDIR(mode):
        return BadSample(path, f"is a directory; give the image files in it ({os.path.join(path, '*.jpg')})")
    if not stat.S_ISREG(mode):
        return BadSample(path, f"is a {file_kind(mode)}, not a regular file; give image files")
    if extensions is not None and not has_file_allowed_extension(path, extensions):
        suffix = Path(path).suffix or "(no extension)"
        return BadSample(
            path, f"{suffix} is not an image type training reads ({', '.join(extensions)}); convert it to one of them"
        )
    try:
        return read_rgb(path, max_pixels)
    except (OSError, Image.DecompressionBombError) as err:  # Pillow's and ours say what is wrong
        return BadSample(path, str(err))
    except UNREADABLE_IMAGE_ERRORS as err:  # a broken header or chunk, which the bare message would not say
        return BadSample(path, f"not a readable image ({type(err).__name__}: {err})")

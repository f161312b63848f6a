"""Files on disk: which names are images, whether an image decodes completely, and writing so that a crash
never leaves half a file."""
import contextlib
import os
import tempfile
from os import path as osp

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not osp.basename(name).startswith('.')


def check_image_complete(path):
    """Decode the image strictly (Pillow): a truncated or damaged PNG/JPEG, which OpenCV decodes silently into a
    partly grey image, raises ImageReadError naming the file. Formats Pillow does not know are left to OpenCV."""
    from PIL import Image, UnidentifiedImageError

    from srdiff_basicsr.errors import ImageReadError
    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        return
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f'{path}: damaged or truncated image ({error})') from None


@contextlib.contextmanager
def atomic_write(path, keep_extension=False):
    """Yields a temporary name beside ``path``, new and unique (``.name.<random>.tmp``, so that no file of the user's
    is ever taken for it and no ``*.pth``/``*.state``/image pattern matches it; with ``keep_extension``
    ``.name.<random>.tmp.ext``, as OpenCV picks the format from the extension). Once the block has written it,
    it replaces ``path``. On an error ``path`` is untouched and the temporary file removed, so a killed or failed
    run never leaves a truncated file under the real name."""
    folder, name = osp.split(os.fspath(path))
    suffix = '.tmp' + (osp.splitext(name)[1] if keep_extension else '')
    handle, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix=suffix, dir=folder or '.')
    os.close(handle)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)

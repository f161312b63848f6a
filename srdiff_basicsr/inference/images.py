"""Images as users have them: 8- or 16-bit, grayscale, colour or with alpha; written back the same way.

The network sees RGB in [0, 1]. Grayscale is replicated to three channels and averaged back; an
alpha channel is not super-resolved but upscaled by MATLAB-style bicubic and put back; 16-bit
images keep 16 bits (the network sees the full precision, the output is written with 16 bits).
"""
import os
from dataclasses import dataclass
from os import path as osp

import cv2
import numpy as np
import torch

from srdiff_basicsr.errors import ImageReadError
from srdiff_basicsr.files import atomic_write, check_image_complete, is_image_name
from srdiff_basicsr.ops.resize import imresize


@dataclass
class LoadedImage:
    rgb: torch.Tensor  # (1, 3, H, W) in [0, 1], float32
    alpha: torch.Tensor | None  # (1, 1, H, W) in [0, 1]
    grayscale: bool
    max_value: int  # 255 or 65535


def read_image(path):
    check_image_complete(path)
    # decoded from the bytes: OpenCV's own file functions crash on names that are not valid UTF-8
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f'{path}: not a readable image')
    if image.dtype == np.uint8:
        max_value = 255
    elif image.dtype == np.uint16:
        max_value = 65535
    else:
        raise ImageReadError(f'{path}: {image.dtype} pixels are not supported (8- or 16-bit integers only)')
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        grayscale, alpha = True, None
        rgb = np.repeat(image[..., None], 3, axis=2)
    elif image.shape[2] in (3, 4):
        grayscale = False
        rgb = image[..., 2::-1]  # BGR(A) -> RGB
        alpha = image[..., 3] if image.shape[2] == 4 else None
    else:
        raise ImageReadError(f'{path}: {image.shape[2]} channels are not supported (1, 3 or 4)')
    to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a).astype(np.float32) / max_value)  # noqa: E731
    rgb_t = to_tensor(rgb).permute(2, 0, 1)[None]
    alpha_t = None if alpha is None else to_tensor(alpha)[None, None]
    return LoadedImage(rgb_t, alpha_t, grayscale, max_value)


def upscale_alpha(alpha, scale):
    return imresize(alpha, scale).clamp(0, 1)


def to_array(sr_rgb, alpha, grayscale, max_value, truncate=False):
    """(1, 3, H, W) [0, 1] RGB (+ alpha) -> the array to write, in the input's layout and bit depth; rounded, or
    ``truncate``d as StableSR's scripts write (``astype(np.uint8)``)."""
    dtype = np.uint8 if max_value == 255 else np.uint16
    to_level = torch.floor if truncate else torch.round
    quantise = lambda t: to_level(t.clamp(0, 1) * max_value).cpu().numpy().astype(dtype)  # noqa: E731
    if grayscale:
        return quantise(sr_rgb[0].mean(0))
    bgr = quantise(sr_rgb[0].flip(0)).transpose(1, 2, 0)
    if alpha is not None:
        bgr = np.concatenate([bgr, quantise(alpha[0, 0])[..., None]], axis=2)
    return np.ascontiguousarray(bgr)


def write_image(path, array):
    """Written to ``path`` through a temporary file, so an interrupted run leaves no half image; encoded in
    memory (any file name, as ``read_image``)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.lower().endswith(('.jpg', '.jpeg')) else []
    ok, encoded = cv2.imencode(osp.splitext(path)[1] or '.png', array, params)
    if not ok:
        raise OSError(f'{path}: could not be encoded as {osp.splitext(path)[1]}')
    with atomic_write(path, keep_extension=True) as tmp:
        encoded.tofile(tmp)


def list_inputs(input_path):
    """The image files of a folder (sorted, by extension), or the one file given."""
    if osp.isdir(input_path):
        return sorted(osp.join(input_path, name) for name in os.listdir(input_path)
                      if is_image_name(name))
    if osp.isfile(input_path):
        return [input_path]
    raise FileNotFoundError(f'input: no such file or folder: {input_path}')

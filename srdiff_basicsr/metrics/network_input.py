"""BasicSR's metric data as the input of a perceptual network (LPIPS, ST-LPIPS)."""
import numpy as np
import torch


def network_inputs(img, img2, crop_border, min_size, metric, device=None):
    """Two uint8 BGR HWC images, ``crop_border`` pixels cut from each side, as RGB NCHW tensors in [-1, 1] on
    ``device`` (default: CUDA when available); images smaller than ``min_size`` are an error naming ``metric``."""
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if crop_border:
        inner = (slice(crop_border, -crop_border), slice(crop_border, -crop_border))
        img, img2 = img[inner], img2[inner]
    if min(img.shape[:2]) < min_size:
        raise ValueError(f'{metric}: images must be at least {min_size}x{min_size} (after crop_border), '
                         f'got {img.shape[:2]}')

    def tensor(image):
        rgb = np.ascontiguousarray(image[..., ::-1]).astype(np.float32) / 127.5 - 1
        return torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device)

    return tensor(img), tensor(img2)

"""Comparison grids: one row of labelled tiles per image, cropped to its most detailed region when large."""
import cv2
import numpy as np

HEADER = 22  # pixels above each tile for its label


def detail_crop(hr, size):
    """(top, left) of the size x size window of the HR image with the most edge energy (the region
    where methods differ), searched every 1/8 window; the whole image when it is small enough."""
    h, w = hr.shape[:2]
    if h <= size and w <= size:
        return 0, 0
    gray = cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY).astype(np.float64)
    energy = np.abs(cv2.Laplacian(gray, cv2.CV_64F))
    integral = cv2.integral(energy)
    best, best_pos = -1.0, (0, 0)
    step = max(size // 8, 1)
    for top in sorted({*range(0, max(h - size, 0) + 1, step), max(h - size, 0)}):
        for left in sorted({*range(0, max(w - size, 0) + 1, step), max(w - size, 0)}):
            bottom, right = min(top + size, h), min(left + size, w)
            total = integral[bottom, right] - integral[top, right] - integral[bottom, left] + integral[top, left]
            if total > best:
                best, best_pos = total, (top, left)
    return best_pos


def comparison_grid(hr, tiles, crop_size=192, reference_name='HR'):
    """One PNG row: [HR overview with the crop box, when cropped] + ``tiles`` (label, BGR uint8 image of
    the HR size), each cropped to the same window of at most crop_size x crop_size pixels. ``hr`` is the image
    the window is chosen on (``reference_name``: another upscale where there is no HR)."""
    h, w = hr.shape[:2]
    top, left = detail_crop(hr, crop_size)
    ch, cw = min(h, crop_size), min(w, crop_size)
    cropped = (h, w) != (ch, cw)
    row = []
    if cropped:
        overview = hr.copy()
        cv2.rectangle(overview, (left, top), (left + cw - 1, top + ch - 1), (0, 0, 255), max(1, min(h, w) // 150))
        factor = min(ch / h, cw / w)
        small = cv2.resize(overview, (max(1, round(w * factor)), max(1, round(h * factor))),
                           interpolation=cv2.INTER_AREA)
        canvas = np.full((ch, cw, 3), 255, np.uint8)
        canvas[:small.shape[0], :small.shape[1]] = small
        row.append(_labelled(f'{reference_name} (full)', canvas))
    for label, image in tiles:
        if image.shape[:2] != (h, w):
            raise ValueError(f'comparison_grid: tile {label!r} is {image.shape[:2]}, the {reference_name} is {(h, w)}')
        row.append(_labelled(label, image[top:top + ch, left:left + cw]))
    return np.concatenate(row, axis=1)


def _labelled(label, tile):
    header = np.full((HEADER, tile.shape[1], 3), 255, np.uint8)
    scale = 0.4
    (text_w, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if text_w > tile.shape[1] - 4:  # narrow tiles: shrink the text to fit
        scale *= (tile.shape[1] - 4) / text_w
    cv2.putText(header, label, (2, HEADER - 7), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, np.ascontiguousarray(tile)], axis=0)

"""What BasicSR's NIQE can score: it cuts the image into whole 96x96 blocks (its model's size) and fits a covariance
to their features, so fewer than two blocks after the border crop give a LinAlgError from deep inside numpy instead
of a number."""
NIQE_BLOCK = 96


def niqe_size_problem(metric_opt, shape):
    """Why a metric of ``metric_opt`` cannot score an image of ``shape`` (H, W, ...), or None."""
    if metric_opt.get('type') != 'calculate_niqe':
        return None
    crop = metric_opt.get('crop_border', 0)
    blocks = ((shape[0] - 2 * crop) // NIQE_BLOCK) * ((shape[1] - 2 * crop) // NIQE_BLOCK)
    if blocks >= 2:
        return None
    return (f'NIQE needs at least 2 blocks of {NIQE_BLOCK}x{NIQE_BLOCK} px after its {crop}-px border crop, the '
            f'{shape[1]}x{shape[0]} image has {max(blocks, 0)}')

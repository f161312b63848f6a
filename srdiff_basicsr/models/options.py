"""SRDiffModel's options, checked before anything is built, errors naming the option."""
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.network_options import complete_network_options, diffusion_options
from srdiff_basicsr.pipeline import check_precision

NOISE_LOSS_DEFAULT = {'type': 'L1Loss', 'loss_weight': 1.0}  # the paper's


def check_options(opt):
    """Fail early, naming the option, instead of deep inside torch. Completes the network sections (see
    ``complete_network_options``) and ``train.pixel_opt`` (the noise loss, the paper's L1 when not given)."""
    if opt.get('path', {}).get('pretrain_network_encoder') is None:
        raise OptionsError('path.pretrain_network_encoder is not set: SRDiff needs a pretrained LR encoder '
                           '(train one with options/train_rrdb_*.yml, then point this at its models/net_g_*.pth)')
    complete_network_options(opt)
    diffusion_options(opt.get('diffusion'))
    if opt.get('device') and opt.get('dist'):
        raise OptionsError('device: not with a launcher (each process takes the GPU of its LOCAL_RANK)')
    train_opt = opt.get('train')
    if opt.get('is_train') and train_opt is not None:
        if train_opt.get('perceptual_opt'):
            raise OptionsError('train.perceptual_opt: SRDiff is trained on the noise prediction, where a perceptual '
                               'loss does not apply; use train.pixel_opt (L1Loss or MSELoss)')
        train_opt.setdefault('pixel_opt', dict(NOISE_LOSS_DEFAULT))
        check_precision(train_opt.get('precision', 'fp32'), _device(opt), 'train')


def _device(opt):
    return opt.get('device') or ('cuda' if opt.get('num_gpu', 0) != 0 else 'cpu')

"""One rank of ``tests/test_distributed.py``'s training check, started by torchrun.

    torchrun --standalone --nproc_per_node 2 -m tests.distributed_worker OUT_DIR ENCODER sync|nosync|joint

Builds SRDiffModel as BasicSR's training pipeline does (our launcher, gloo on CPU), runs three training
steps on data that differs between ranks, and saves the U-Net's and encoder's weights and wrapper types to
OUT_DIR/rank<r>.pt. ``nosync`` builds the model without DDP (each rank on its own): the control; ``joint``
trains the encoder too (``train.optim_encoder``).
"""
import sys

import torch

import srdiff_basicsr.plugin  # noqa: F401  (registration, BasicSR fixes)
from basicsr.models import build_model
from basicsr.utils.dist_util import get_dist_info

from srdiff_basicsr.host.distributed import init_dist
from tests.conftest import srdiff_options


def main(out_dir, encoder_path, mode):
    init_dist('pytorch')
    rank, world_size = get_dist_info()
    opt = srdiff_options('dist_unit', None, None, encoder_path, timesteps=10)
    opt.pop('datasets')
    opt.update(is_train=True, dist=mode != 'nosync', rank=rank, world_size=world_size)
    if mode == 'joint':
        opt['train']['optim_encoder'] = {'type': 'Adam', 'lr': 1e-3}
    torch.manual_seed(0)  # the same initial weights on every rank, as BasicSR's seeding gives
    model = build_model(opt)
    torch.manual_seed(100 + rank)  # different data and noise per rank, as BasicSR's seed + rank
    for step in range(3):
        lq = torch.rand(2, 3, 4, 4)
        model.feed_data({'lq': lq, 'gt': torch.rand(2, 3, 16, 16)})
        model.optimize_parameters(step)
    torch.save({'params': model.get_bare_model(model.net_g).state_dict(),
                'encoder': model.get_bare_model(model.net_encoder).state_dict(),
                'net_g': type(model.net_g).__name__, 'net_encoder': type(model.net_encoder).__name__,
                'l_noise': model.log_dict['l_noise']}, f'{out_dir}/rank{rank}.pt')


if __name__ == '__main__':
    main(*sys.argv[1:])

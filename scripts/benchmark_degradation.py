"""The cost of Real-ESRGAN's degradation stage per training batch: ours (``degradation: {type: realesrgan}``) beside
BasicSR's own RealESRNetModel.feed_data on the same batches and seeds, and BasicSR's USM sharpening alone.

    python scripts/benchmark_degradation.py [--device cuda] [--batch 8] [--sizes 400 128] [--repeats 3]

Batches are random HR crops of each size with random normalised 21 x 21 kernels (RealESRGANDataset's shapes);
gt_size is a quarter of the size, the pool larger than the run (no exchange). Writes --out/report.md.
"""
import argparse
import tempfile

import torch
from basicsr.models import build_model
from basicsr.utils import USMSharp, set_random_seed

import srdiff_basicsr.plugin  # noqa: F401  (compat: BasicSR's RealESRNetModel on any device)
from benchmarking.report import write_report
from benchmarking.speed import machine, timed
from srdiff_basicsr.data.realesrgan_degradation import REALESRGAN_DEFAULTS, RealESRGANDegradation


def batch(size, count, device, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def kernels():
        k = torch.rand(count, 21, 21, generator=gen)
        return (k / k.sum(dim=(1, 2), keepdim=True)).to(device)

    return {'gt': torch.rand(count, 3, size, size, generator=gen).to(device), 'kernel1': kernels(),
            'kernel2': kernels(), 'sinc_kernel': kernels()}


def realesrnet_model(degradation, device, folder):
    """BasicSR's RealESRNetModel with a tiny network (only its feed_data is timed)."""
    opt = dict(name='reference', model_type='RealESRNetModel_basicsr', scale=4, is_train=True, dist=False, rank=0,
               world_size=1, num_gpu=0 if torch.device(device).type == 'cpu' else 1,
               network_g=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=4, num_block=1, num_grow_ch=4),
               path=dict(pretrain_network_g=None, strict_load_g=True, resume_state=None,
                         **{key: folder for key in ('experiments_root', 'models', 'training_states')}),
               train=dict(optim_g=dict(type='Adam', lr=1e-4), pixel_opt=dict(type='L1Loss', loss_weight=1.0),
                          scheduler=dict(type='MultiStepLR', milestones=[10], gamma=0.5)),
               **{**REALESRGAN_DEFAULTS, **degradation})
    return build_model(opt)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--sizes', type=int, nargs='+', default=[400, 128])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default='results/benchmark_degradation')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    lines = [f'# Real-ESRGAN degradation stage, batch {args.batch}, {machine(args.device)}', '',
             '| HR size | gt_usm | ours s / batch | BasicSR RealESRNetModel s / batch | ratio | USM alone s |',
             '|---|---|---|---|---|---|']
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            data = batch(size, args.batch, device)
            usm = USMSharp().to(device)
            usm_seconds = timed(lambda: usm(data['gt']), args.repeats, device)
            for gt_usm in (True, False):
                degradation = {'gt_usm': gt_usm, 'gt_size': size // 4, 'queue_size': args.batch * 1000}
                stage = RealESRGANDegradation({'type': 'realesrgan', **degradation}, 4, device)
                reference = realesrnet_model(degradation, device, folder)
                set_random_seed(0)
                ours = timed(lambda: stage(data), args.repeats, device)
                set_random_seed(0)
                theirs = timed(lambda: reference.feed_data(data), args.repeats, device)
                rows.append((size, gt_usm, ours, theirs))
                lines.append(f'| {size} | {gt_usm} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} | '
                             f'{usm_seconds:.3f} |')
    lines += ['', 'ratio = ours / BasicSR\'s, measured in one run on the same batches and seeds (the same operations: '
              'expect about 1).']
    write_report(args.out, lines)
    return rows


if __name__ == '__main__':
    main()

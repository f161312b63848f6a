"""Training and sampling speed of SRDiff at the paper's CelebA size, on this machine.

Builds the paper's CelebA x8 networks (U-Net 10.5M, encoder 1.5M, random weights: speed does not
depend on them) and measures, in one run:
- seconds per training iteration (batch 16, 160x160 HR, 20x20 LR), the model's real training step;
- seconds per 100-step sampled image (160x160), ours (condition projected once per image) against the
  official scheme (the condition's transposed conv recomputed at every step), as a ratio.
Writes a markdown report.

    python scripts/benchmark_speed.py --out results/benchmark_speed.md
"""
import argparse
import os
import platform
import tempfile
import time

import torch
from basicsr.models import build_model

import srdiff_basicsr  # noqa: F401
from srdiff_basicsr.diffusion.samplers import ddpm_sample
from srdiff_basicsr.ops.resize import imresize


def paper_model(workdir, device):
    """SRDiffModel with the paper's CelebA x8 networks and a random encoder saved to workdir."""
    from basicsr.archs import build_network
    encoder_opt = dict(type='SRDiffRRDBNet', scale=8, num_feat=32, num_block=8, num_grow_ch=16)
    encoder_path = os.path.join(workdir, 'encoder.pth')
    torch.save({'params': build_network(dict(encoder_opt)).state_dict()}, encoder_path)
    opt = dict(name='benchmark', model_type='SRDiffModel', scale=8, num_gpu=1 if device == 'cuda' else 0,
               is_train=True, dist=False, rank=0, world_size=1, manual_seed=0,
               network_g=dict(type='SRDiffUNet', dim=64, dim_mults=[1, 2, 2, 4]), network_encoder=encoder_opt,
               path=dict(pretrain_network_g=None, pretrain_network_encoder=encoder_path, models=workdir,
                         training_states=workdir),
               train=dict(optim_g=dict(type='Adam', lr=2e-4), total_iter=10,
                          scheduler=dict(type='MultiStepLR', milestones=[100000], gamma=0.5)),
               val=dict(seed=0))
    return build_model(opt)


def timed(fn, repeats):
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='results/benchmark_speed.md')
    parser.add_argument('--train-iters', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args()
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        model = paper_model(workdir, args.device)
    torch.manual_seed(0)
    batch = {'lq': torch.rand(16, 3, 20, 20), 'gt': torch.rand(16, 3, 160, 160)}

    def train_step():
        model.feed_data(batch)
        model.optimize_parameters(1)

    train_s = timed(train_step, args.train_iters)
    print(f'training: {train_s:.2f} s/iter (batch 16, 160x160)', flush=True)

    lq = batch['lq'][:1].to(model.device)
    ours_s = timed(lambda: model.sample(lq, torch.Generator(model.device).manual_seed(0)), 1)
    print(f'sampling, condition once per image: {ours_s:.1f} s/image', flush=True)

    unet, encoder = model.net_g.eval(), model.net_encoder

    def official_scheme():  # cond_proj inside every network call, as the official U-Net does
        with torch.no_grad():
            features = encoder.features(lq)
            x_T = torch.randn(imresize(lq, 8).shape, device=lq.device)
            ddpm_sample(lambda x, t: unet(x, t, unet.project_condition(features)), model.diffusion, x_T,
                        generator=torch.Generator(lq.device).manual_seed(0))

    official_s = timed(official_scheme, 1)
    print(f'sampling, condition every step (official scheme): {official_s:.1f} s/image', flush=True)
    threads = torch.get_num_threads()
    report = '\n'.join([
        '# SRDiff speed, paper CelebA x8 networks', '',
        f'device: {args.device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
        f'{threads} torch threads), torch {torch.__version__}', '',
        '| measure | value |', '|---|---|',
        f'| training, batch 16, 160x160 HR | {train_s:.2f} s/iter |',
        f'| sampling 100 steps, 160x160, condition once per image (ours) | {ours_s:.1f} s/image |',
        f'| sampling 100 steps, 160x160, condition every step (official scheme) | {official_s:.1f} s/image |',
        f'| ratio official / ours | {official_s / ours_s:.2f} |', ''])
    with open(args.out, 'w') as f:
        f.write(report)
    print(report)


if __name__ == '__main__':
    main()

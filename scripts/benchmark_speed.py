"""What each execution option buys, against fp32, in one run: SRDiff's training step and sampling step at
the paper's CelebA x8 size, and what precision costs in the loss curve.

Builds the paper's CelebA x8 networks (U-Net 10.5M, encoder 1.5M; random encoder weights, as speed does
not depend on them) and measures, in one process (ratios are comparable; absolute times depend on load):
- seconds per training iteration (batch --batch, 160x160 HR, 20x20 LR), the model's real training step,
  with train.precision fp32 | bf16 (| fp16 on CUDA), train.channels_last, train.compile (--compile);
- seconds per sampling step (network evaluation) of a 160x160 image, with the same options under val.*;
- the condition projected once per image (ours) against at every step (the official U-Net);
- the loss curves of --curve-iters training iterations in fp32 and bf16 from the same seed and batches
  (photographs shipped with scikit-image), so a user sees what bf16 costs.
Writes a Markdown report.

    python scripts/benchmark_speed.py [--out results/benchmark_speed.md] [--device cuda:0] [--compile]
"""
import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch
from basicsr.models import build_model

import srdiff_basicsr  # noqa: F401  (registration)
from srdiff_basicsr.diffusion.noise import noise_source
from srdiff_basicsr.diffusion.parametrization import Denoiser
from srdiff_basicsr.diffusion.samplers import run_sampler, sampler_options
from srdiff_basicsr.network_options import build_arch
from srdiff_basicsr.ops.resize import imresize, imresize_uint8

ENCODER = dict(type='SRDiffRRDBNet', scale=8, num_feat=32, num_block=8, num_grow_ch=16)


def paper_model(encoder_path, device, train_opt=None, val_opt=None):
    """SRDiffModel with the paper's CelebA x8 networks; ``train_opt``/``val_opt`` add execution options."""
    opt = dict(name='benchmark', model_type='SRDiffModel', scale=8, num_gpu=1 if device.startswith('cuda') else 0,
               device=device, is_train=True, dist=False, rank=0, world_size=1, manual_seed=0,
               network_g=dict(type='SRDiffUNet', dim=64, dim_mults=[1, 2, 2, 4]), network_encoder=dict(ENCODER),
               path=dict(pretrain_network_g=None, pretrain_network_encoder=encoder_path,
                         models=os.path.dirname(encoder_path), training_states=os.path.dirname(encoder_path)),
               train=dict(optim_g=dict(type='Adam', lr=2e-4), total_iter=10,
                          scheduler=dict(type='MultiStepLR', milestones=[100000], gamma=0.5), **(train_opt or {})),
               val=dict(seed=0, **(val_opt or {})))
    torch.manual_seed(0)  # the same initial U-Net for every configuration
    return build_model(opt)


def photo_batches(count, batch, device):
    """``count`` batches of 160x160 HR crops of scikit-image photographs and their x8 bicubic LR."""
    from skimage import data
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(count):
        crops = []
        for _ in range(batch):
            photo = photos[rng.integers(len(photos))]
            top, left = rng.integers(0, photo.shape[0] - 160), rng.integers(0, photo.shape[1] - 160)
            crops.append(np.ascontiguousarray(photo[top:top + 160, left:left + 160]))
        to_tensor = lambda images: torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)  # noqa: E731
        batches.append({'gt': to_tensor(crops).to(device),
                        'lq': to_tensor([imresize_uint8(c, 1 / 8) for c in crops]).to(device)})
    return batches


def synchronize(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, repeats, device):
    fn()  # warm-up (and compilation)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def configurations(device, compile):
    configs = [('fp32', {}), ('bf16', {'precision': 'bf16'}), ('channels_last', {'channels_last': True})]
    if device.startswith('cuda'):
        configs.insert(2, ('fp16', {'precision': 'fp16'}))
        configs.append(('bf16 + channels_last', {'precision': 'bf16', 'channels_last': True}))
    if compile:
        configs.append(('compile', {'compile': True}))
    return configs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='results/benchmark_speed.md')
    parser.add_argument('--batch', type=int, default=4, help='training batch size (the paper: 16)')
    parser.add_argument('--train-iters', type=int, default=3, help='timed training iterations per configuration')
    parser.add_argument('--sample-steps', type=int, default=10, help='timed sampling steps per configuration')
    parser.add_argument('--curve-iters', type=int, default=30, help='iterations of the fp32 / bf16 loss curves')
    parser.add_argument('--compile', action='store_true', help='also time torch.compile (slow to compile on CPU)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args()
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    workdir = tempfile.mkdtemp()
    encoder_path = os.path.join(workdir, 'encoder.pth')
    torch.manual_seed(0)
    torch.save({'params': build_arch(ENCODER).state_dict()}, encoder_path)
    train_batch = photo_batches(1, args.batch, args.device)[0]
    lq = train_batch['lq'][:1]

    rows = []
    for name, options in configurations(args.device, args.compile):
        model = paper_model(encoder_path, args.device, train_opt=options, val_opt=options)

        def train_step():
            model.feed_data(train_batch)
            model.optimize_parameters(1)

        train_s = timed(train_step, args.train_iters, args.device)
        steps = args.sample_steps
        sample_s = timed(lambda: model.pipeline(lq, seed=0, sampler='ddim', steps=steps), 1, args.device) / steps
        rows.append((name, train_s, sample_s))
        print(f'{name}: training {train_s:.2f} s/iter, sampling {sample_s:.3f} s/step', flush=True)

    # the condition projected once per image (the pipeline) against at every step (the official U-Net)
    model = paper_model(encoder_path, args.device)
    unet, encoder, schedule = model.pipeline.unet.eval(), model.pipeline.encoder, model.pipeline.schedule
    ddim = sampler_options({'type': 'ddim', 'steps': args.sample_steps}, schedule.num_timesteps)

    @torch.no_grad()
    def official_scheme():
        features = encoder.features(lq)
        lr_up = imresize(lq, 8) * 2 - 1
        network = lambda x, t: unet(x, t, unet.project_condition(features, lr_up))  # noqa: E731
        run_sampler(ddim, Denoiser(network, schedule), schedule, torch.randn(imresize(lq, 8).shape, device=lq.device),
                    noise_source(torch.Generator(lq.device).manual_seed(0)))

    official_s = timed(official_scheme, 1, args.device) / args.sample_steps
    ours_s = rows[0][2]

    # loss curves, fp32 and bf16, from the same weights, batches and noise
    batches = photo_batches(args.curve_iters, args.batch, args.device)
    curves = {}
    for precision in ('fp32', 'bf16'):
        model = paper_model(encoder_path, args.device, train_opt={'precision': precision})
        torch.manual_seed(1)
        curves[precision] = []
        for it, data in enumerate(batches, 1):
            model.feed_data(data)
            model.optimize_parameters(it)
            curves[precision].append(model.log_dict['l_noise'])
        print(f'{precision} loss curve: {" ".join(f"{v:.4f}" for v in curves[precision])}', flush=True)

    where = (torch.cuda.get_device_name(args.device) if args.device.startswith('cuda') else
             f'CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
             f'{torch.get_num_threads()} torch threads)')
    fp32_train, fp32_sample = rows[0][1], rows[0][2]
    lines = ['# SRDiff speed by execution option, paper CelebA x8 networks', '',
             f'device: {args.device}, {where}; torch {torch.__version__}. All rows from one run; the ratios are '
             'against fp32 in that run.', '',
             f'| option | training s/iter (batch {args.batch}, 160x160) | vs fp32 | sampling s/step (160x160) '
             '| vs fp32 |', '|---|---|---|---|---|']
    lines += [f'| {name} | {train_s:.3f} | {fp32_train / train_s:.2f}x | {sample_s:.4f} | '
              f'{fp32_sample / sample_s:.2f}x |' for name, train_s, sample_s in rows]
    lines += ['', f'Condition projected once per image (ours): {ours_s:.4f} s/step; at every step (the official '
              f'U-Net): {official_s:.4f} s/step; ratio official / ours {official_s / ours_s:.2f}.', '',
              f'## Loss curves, fp32 and bf16 (same seed, weights and {args.curve_iters} batches of {args.batch} '
              'photograph crops)', '', '| iterations | fp32 mean l_noise | bf16 mean l_noise |', '|---|---|---|']
    for start in range(0, args.curve_iters, 10):
        end = min(start + 10, args.curve_iters)
        lines.append(f'| {start + 1}-{end} | {np.mean(curves["fp32"][start:end]):.5f} | '
                     f'{np.mean(curves["bf16"][start:end]):.5f} |')
    gap = np.abs(np.array(curves['bf16']) - np.array(curves['fp32'])) / np.array(curves['fp32'])
    lines += ['', f'bf16 vs fp32 loss, per iteration: mean relative difference {gap.mean():.3%}, max {gap.max():.3%}.',
              '']
    with open(args.out, 'w') as f:
        f.write('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()

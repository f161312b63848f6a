"""Memory and time of ECDP's image-quality step: back-propagation through the probability-flow ODE by the adjoint
method against plain back-propagation through the solver's steps, for one HR crop.

    python scripts/benchmark_adjoint.py [-opt options/demo_ecdp_x4.yml] [--crop 160] [--rtol 1e-3] [--weights W]

The networks of the options file (random weights unless --weights, an experiment folder) denoise one crop
(LR crop/scale of a scikit-image photograph); the loss is the L1 between the ODE's SR sample and the HR crop.
Each variant runs in its own process (peak resident memory above the start, polled every 5 ms on CPU; CUDA's
allocator statistics on a GPU). Reports NFE of the forward solve, seconds, peak MiB, their ratios, and how far the
two gradients are apart (relative L2 and cosine over all parameters, and the worst tensor). Writes --out/report.md
(an earlier report is archived).
"""
import argparse
import json
import subprocess
import sys
import time
from os import path as osp

import torch
import yaml
from basicsr.utils import mkdir_and_rename

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from benchmarking.sampling import PeakMemory
from srdiff_basicsr.diffusion.condition import conditioned_network, timed_network
from srdiff_basicsr.diffusion.parametrization import Denoiser
from srdiff_basicsr.diffusion.samplers import probability_flow
from srdiff_basicsr.archs.arch_options import build_arch
from srdiff_basicsr.network_options import complete_network_options
from srdiff_basicsr.ops.resize import imresize
from srdiff_basicsr.pipeline import SRDiffPipeline


def build(args):
    if args.weights:
        return SRDiffPipeline.from_pretrained(args.weights, device=args.device)
    with open(args.opt) as f:
        opt = yaml.safe_load(f)
    opt = complete_network_options({key: opt.get(key) for key in
                                    ('scale', 'network_g', 'network_encoder', 'diffusion')})
    torch.manual_seed(0)
    return SRDiffPipeline.from_networks(build_arch(opt['network_encoder']), build_arch(opt['network_g']),
                                        opt['scale'], opt['diffusion'], device=args.device)


def one_step(args):
    """The image-quality step of one crop; prints a JSON line (nfe, seconds, peak_mib, gradient file)."""
    from skimage import data
    pipe = build(args)
    unet = pipe.unet.train().requires_grad_(True)
    hr = torch.from_numpy(data.astronaut()[:args.crop, :args.crop]).permute(2, 0, 1)[None].float().div(255)
    hr = hr.to(pipe.device)
    lr = imresize(hr, 1 / pipe.scale)
    lr_up = imresize(lr, pipe.scale)
    nfe = [0]
    with PeakMemory(pipe.device) as memory:
        start = time.perf_counter()
        conditioned = conditioned_network(timed_network(unet, pipe.schedule), pipe.condition(lr, lr_up))

        def network(x_t, t):
            nfe[0] += 1
            return conditioned(x_t, t)

        denoiser = Denoiser(network, pipe.schedule, pipe.parametrization, pipe.clip_x0)
        x_T = torch.randn(lr_up.shape, generator=torch.Generator().manual_seed(0)).to(pipe.device)
        params = list(unet.parameters()) if args.variant == 'adjoint' else None
        x = probability_flow(denoiser, pipe.schedule, x_T, pipe.schedule.num_timesteps - 1, 0, args.rtol, args.rtol,
                             adjoint_params=params)
        forward_nfe = nfe[0]
        x0, _ = denoiser(x, torch.zeros(1, device=x.device))
        loss = torch.nn.functional.l1_loss(pipe.space.decode(x0, lr_up), hr)
        loss.backward()
        if pipe.device.type == 'cuda':
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    torch.save([p.grad for p in unet.parameters()], args.gradients)
    print(json.dumps({'nfe': forward_nfe, 'seconds': seconds, 'peak_mib': memory.mib, 'loss': loss.item()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', default='options/demo_ecdp_x4.yml')
    parser.add_argument('--weights', default=None, help='an experiment folder (default: random weights)')
    parser.add_argument('--crop', type=int, default=160)
    parser.add_argument('--rtol', type=float, default=1e-3, help='rtol = atol of the solve (ECDP: 1e-3)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', default='results/benchmark_adjoint')
    parser.add_argument('--variant', choices=('adjoint', 'plain'), help=argparse.SUPPRESS)  # the child process
    parser.add_argument('--gradients', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return one_step(args)

    mkdir_and_rename(args.out)
    results = {}
    for variant in ('plain', 'adjoint'):
        gradients = osp.join(args.out, f'gradients_{variant}.pth')
        command = [sys.executable, __file__, '-opt', args.opt, '--crop', str(args.crop), '--rtol', str(args.rtol),
                   '--device', args.device, '--variant', variant, '--gradients', gradients]
        if args.weights:
            command += ['--weights', args.weights]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f'the {variant} step failed:\n{done.stderr[-3000:]}')
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        results[variant]['gradients'] = torch.load(gradients, weights_only=True)
        print(variant, {k: v for k, v in results[variant].items() if k != 'gradients'}, flush=True)
    plain, adjoint = results['plain'], results['adjoint']
    pairs = [(a, p) for a, p in zip(adjoint['gradients'], plain['gradients']) if p is not None]
    worst = max(((a - p).norm() / p.norm().clamp(min=1e-12)).item() for a, p in pairs)
    a, p = (torch.cat([g.flatten() for g in grads]) for grads in zip(*pairs))
    overall, cosine = ((a - p).norm() / p.norm()).item(), torch.nn.functional.cosine_similarity(a, p, dim=0).item()
    device = (torch.cuda.get_device_name() if args.device.startswith('cuda')
              else f'CPU ({torch.get_num_threads()} threads)')
    report = ['# Back-propagation through the probability-flow ODE: adjoint vs plain', '',
              f"- networks of {args.weights or args.opt} ({'trained' if args.weights else 'random'} weights); one "
              f'{args.crop}x{args.crop} HR crop (astronaut), dopri5, rtol = atol = {args.rtol}; device: {device}',
              '- peak: memory above the start of the step (CPU: resident set polled every 5 ms); each variant in its '
              'own process', '',
              '| back-propagation | forward NFE | seconds | peak MiB |', '|---|---|---|---|',
              *[f"| {variant} | {r['nfe']} | {r['seconds']:.1f} | {r['peak_mib']:.0f} |"
                for variant, r in results.items()],
              '', f"- adjoint / plain: memory {adjoint['peak_mib'] / plain['peak_mib']:.3f}, time "
              f"{adjoint['seconds'] / plain['seconds']:.2f}; the same forward solve (loss {plain['loss']:.6f} vs "
              f"{adjoint['loss']:.6f})",
              f'- gradients, adjoint vs plain: |difference| / |plain| {overall:.3f} over all parameters (cosine '
              f'{cosine:.4f}), {worst:.3f} in the worst tensor; plain is the exact gradient of the forward solve, the '
              'adjoint solves its own backward ODE at the same tolerance']
    with open(osp.join(args.out, 'report.md'), 'w') as f:
        f.write('\n'.join(report) + '\n')
    print('\n'.join(report))


if __name__ == '__main__':
    main()

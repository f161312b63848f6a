"""One U-Net step of the released networks, profiled: where the time goes and how far it is from the peak.

    python scripts/profile_unet.py [--hr-size 160] [--device cpu] [--out results/profile_unet.md]

For each network (SRDiff CelebA x8, ECDP DIV2K x4 and SRADM DIV2K x4, as their option files build them; random
weights, as time does not depend on them) and execution mode (fp32, fp32 + channels_last, bf16 + channels_last;
the one that ``precision: auto`` picks here is marked): seconds per U-Net evaluation of one --hr-size image, the share of
each kind of op (convolution; attention and matrix products; normalisation; padding, casts and copies;
element-wise and other: torch.profiler's self time), FLOPs (torch's counter), GFLOP/s of the step and of the
convolutions alone, and their share of the device's nominal peak. Then batching: seconds per sample when S
samples of one image are evaluated in one call (S = 1, 2, 4), fp32. Writes a Markdown report.
"""
import argparse
import os

import torch
import yaml

from benchmarking.speed import (OP_CATEGORIES, OTHER, count_flops, machine, nominal_peak_gflops,
                                profile_by_category, timed)
from srdiff_basicsr.execution import autocast, resolve_execution
from srdiff_basicsr.pipeline import SRDiffPipeline

NETWORKS = [('SRDiff CelebA x8', 'options/train_srdiff_celeba.yml'), ('ECDP DIV2K x4', 'options/train_ecdp_div2k.yml'),
            ('SRADM DIV2K x4', 'options/train_sradm_div2k.yml')]
MODES = [('fp32', 'fp32', False), ('fp32 + channels_last', 'fp32', True), ('bf16 + channels_last', 'bf16', True)]


def released_pipeline(options_file, device):
    """The pipeline of an option file's networks with random weights."""
    with open(options_file) as f:
        opt = yaml.safe_load(f)
    from srdiff_basicsr.archs.arch_options import build_arch
    from srdiff_basicsr.network_options import complete_network_options
    networks = complete_network_options({key: opt.get(key) for key in ('scale', 'network_g', 'network_encoder',
                                                                         'diffusion')})
    torch.manual_seed(0)
    unet, encoder = build_arch(networks['network_g']).eval(), build_arch(networks['network_encoder']).eval()
    return SRDiffPipeline.from_networks(encoder, unet, networks['scale'], opt.get('diffusion'), device=device,
                                        precision='fp32')


def step_of(pipe, hr_size, samples, precision, channels_last):
    """A no-grad U-Net evaluation of ``samples`` noisy residuals of one image, the condition projected once."""
    device = pipe.device
    lq = torch.rand(1, 3, hr_size // pipe.scale, hr_size // pipe.scale, device=device)
    with torch.no_grad():
        cond = pipe.condition(lq, pipe.space.reference(lq)).at(None).expand(samples, -1, -1, -1)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    pipe.unet.to(memory_format=memory_format)
    x = torch.randn(samples, 3, hr_size, hr_size, device=device).contiguous(memory_format=memory_format)
    t = pipe.schedule.network_time(torch.full((samples,), pipe.schedule.num_timesteps // 2, device=device))

    @torch.no_grad()
    def step():
        with autocast(device, precision):
            return pipe.unet(x, t, cond)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hr-size', type=int, default=160)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', default='results/profile_unet.md')
    args = parser.parse_args()
    auto = resolve_execution('auto', None, args.device)
    categories = [category for category, _ in OP_CATEGORIES] + [OTHER]
    lines = [f'# One U-Net step, {args.hr_size}x{args.hr_size}, profiled', '',
             f'device: {args.device}, {machine(args.device)}; torch {torch.__version__}; `precision: auto` picks '
             f'{auto[0]}{" + channels_last" if auto[1] else ""} here (marked *). Shares: torch.profiler self time.',
             '', '| network | mode | s / step | GFLOP | GFLOP/s | share of peak | convolution GFLOP/s | '
             + ' | '.join(categories) + ' |', '|---' * (7 + len(categories)) + '|']
    batching = []
    for label, options_file in NETWORKS:
        pipe = released_pipeline(options_file, args.device)
        flops, per_op = count_flops(step_of(pipe, args.hr_size, 1, 'fp32', False))
        for mode, precision, channels_last in MODES:
            step = step_of(pipe, args.hr_size, 1, precision, channels_last)
            seconds = timed(step, args.repeats, args.device)
            shares = profile_by_category(step, args.device, args.repeats)
            total = sum(shares.values())
            peak, _ = nominal_peak_gflops(args.device, precision)
            gflops = flops / seconds / 1e9
            conv_gflops = per_op.get('convolution', 0) / (shares['convolution'] or float('nan')) / 1e9
            marker = '*' if (precision, channels_last) == auto else ''
            lines.append(f'| {label} | {mode}{marker} | {seconds:.4f} | {flops / 1e9:.2f} | {gflops:.1f} | '
                         f'{f"{gflops / peak:.1%}" if peak else "n/a"} | {conv_gflops:.1f} | '
                         + ' | '.join(f'{shares[c] / total:.0%}' for c in categories) + ' |')
            print(lines[-1], flush=True)
        single = None
        for samples in (1, 2, 4):
            per_sample = timed(step_of(pipe, args.hr_size, samples, 'fp32', False), args.repeats, args.device) / samples
            single = single or per_sample
            batching.append(f'| {label} | {samples} | {per_sample:.4f} | {single / per_sample:.2f}x |')
    lines += ['', '## Several samples of one image in one call (fp32)', '',
              '| network | samples per call | s / sample | vs one per call |', '|---|---|---|---|', *batching, '']
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w') as f:
        f.write('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()

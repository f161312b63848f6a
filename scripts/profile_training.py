"""Where a training iteration's time goes: ours (fp32, and the default execution) beside the official code's step
at the same math, split into its parts, in one run.

The paper's CelebA x8 networks at the sizes of scripts/benchmark_speed.py. Each part is timed by wrapping the
method that does it (wall clock, the median over --iters iterations after one warm-up):
- ours: zero_grad, the frozen encoder's features, the training targets (t, x_t), the U-Net forward, the loss,
  backward, the divergence guard, gradient clipping, the Adam step, BasicSR's log reduction, the collapse
  guard, EMA, and the rest (of BasicSR's loop, feed_data is inside; the data loader is not);
- the official (``--official PATH``, a checkout of LeiaLi/SRDiff): the encoder, the U-Net forward, the
  posterior step its training also computes (p_sample), the loss, backward, the Adam step, the rest.
Writes a Markdown table (default results/profile_training.md).

    python scripts/profile_training.py --official ../SRDiff [--iters 5]
"""
import argparse
import functools
import os
import tempfile
import time
from collections import defaultdict

import numpy as np
import torch

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from benchmark_speed import official_steps, official_training  # the official step as the speed benchmark runs it
from benchmarking.speed import machine, paper_encoder, paper_model, photo_batches
from srdiff_basicsr.archs.arch_options import build_arch
from srdiff_basicsr.models import objectives


class PartTimer:
    """Seconds spent in wrapped callables, per part, for the current iteration; ``restore()`` unwraps them."""

    def __init__(self):
        self.spent = defaultdict(float)
        self.wrapped = []

    def restore(self):
        for owner, attribute, own in reversed(self.wrapped):
            if own is None:  # a method of the class: the instance's wrapper goes
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, own)
        self.wrapped.clear()

    def wrap(self, owner, attribute, part):
        original = getattr(owner, attribute)
        self.wrapped.append((owner, attribute, vars(owner).get(attribute)))

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spent[part] += time.perf_counter() - start
        setattr(owner, attribute, timed)


def profile(step, timer, iters):
    """{part: median seconds per iteration}, 'total' and 'rest' (total minus the timed parts) included."""
    step()  # warm-up
    runs = []
    for _ in range(iters):
        timer.spent.clear()
        start = time.perf_counter()
        step()
        total = time.perf_counter() - start
        runs.append({**timer.spent, 'rest': total - sum(timer.spent.values()), 'total': total})
    return {part: float(np.median([run.get(part, 0.0) for run in runs])) for part in runs[0]}


def ours(model, batch, timer):
    for optimizer in model.optimizers:
        timer.wrap(optimizer, 'zero_grad', 'zero_grad')
        timer.wrap(optimizer, 'step', 'Adam step')
    timer.wrap(model, '_encode', 'encoder features')
    timer.wrap(objectives, '_hr_x0', 'targets (t, x_t)')  # the HR's x0, then noised at random steps
    timer.wrap(objectives, 'noised', 'targets (t, x_t)')
    timer.wrap(model.train_net, 'forward', 'U-Net forward')
    timer.wrap(model.cri_pix, 'forward', 'loss')
    timer.wrap(model, '_diverged', 'divergence guard')
    timer.wrap(model, '_clip_gradients', 'gradient clipping')
    timer.wrap(model, 'reduce_loss_dict', 'log reduction')
    if model.collapse_guard is not None:
        timer.wrap(model, 'collapse_guard', 'collapse guard')
    if model.ema_decay > 0:
        timer.wrap(model, 'model_ema', 'EMA')

    def step():
        model.feed_data(batch)
        model.optimize_parameters(1)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='results/profile_training.md')
    parser.add_argument('--official', metavar='PATH', help='a checkout of the official SRDiff code')
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--hr-size', type=int, default=160)
    parser.add_argument('--dim', type=int, default=64)
    parser.add_argument('--encoder-feat', type=int, default=32)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args()
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    encoder_path = os.path.join(tempfile.mkdtemp(), 'encoder.pth')
    torch.manual_seed(0)
    torch.save({'params': build_arch(paper_encoder(args.encoder_feat)).state_dict()}, encoder_path)
    batch = photo_batches(1, args.batch, args.hr_size, args.device)[0]

    timer = PartTimer()
    try:
        timer.wrap(torch.Tensor, 'backward', 'backward')
        runs = {}
        for label, options in (('ours, fp32', {'precision': 'fp32'}), ('ours, default:', {})):
            model = paper_model(args.device, encoder_path, args.dim, args.encoder_feat, options, options)
            if not options:  # what precision: auto picks here
                label += f' {model.train_precision}{" + channels_last" if model.train_channels_last else ""}'
            runs[label] = profile(ours(model, batch, timer), timer, args.iters)
        if args.official:
            model, optimizer = official_training(args.official, args)
            timer.wrap(model.rrdb, 'forward', 'encoder features')
            timer.wrap(model.denoise_fn, 'forward', 'U-Net forward')
            timer.wrap(model, 'p_sample', 'posterior step (official only)')
            timer.wrap(optimizer, 'zero_grad', 'zero_grad')
            timer.wrap(optimizer, 'step', 'Adam step')
            step, _ = official_steps(model, optimizer, argparse.Namespace(**vars(args), sample_steps=1), batch,
                                     batch['lq'][:1])
            runs['official (fp32)'] = profile(step, timer, args.iters)
    finally:
        timer.restore()  # torch.Tensor.backward and the networks as they were

    parts = list(dict.fromkeys(part for run in runs.values() for part in run if part not in ('rest', 'total')))
    lines = ['# Where a training iteration goes (ms, median of %d iterations)' % args.iters, '',
             f'{machine(args.device)}; the paper\'s CelebA x8 networks, batch {args.batch}, {args.hr_size}x'
             f'{args.hr_size}. "the rest": the iteration minus its timed parts (Python, autograd bookkeeping, '
             'the element-wise ops between the parts).', '',
             '| part | ' + ' | '.join(runs) + ' |', '|---|' + '---|' * len(runs)]
    for part in parts + ['rest', 'total']:
        name = {'rest': 'the rest', 'total': '**iteration**'}.get(part, part)
        lines.append(f'| {name} | ' + ' | '.join(f'{run[part] * 1e3:.1f}' if part in run else '-'
                                                   for run in runs.values()) + ' |')
    report = '\n'.join(lines) + '\n'
    with open(args.out, 'w') as f:
        f.write(report)
    print(report)


if __name__ == '__main__':
    main()

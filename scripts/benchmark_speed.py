"""How fast SRDiff trains and samples here, against the machine's limit and the official code, in one run.

Builds the paper's CelebA x8 networks (U-Net 10.5M, encoder 1.5M; random encoder weights, as speed does not
depend on them) and measures, in one process (ratios are comparable; absolute times depend on load):
- FLOPs of one training iteration (batch --batch, --hr-size HR crops) and of one sampling step (one U-Net
  evaluation of one --hr-size image), by torch's FLOP counter;
- seconds per training iteration (the model's real step) and per sampling step for each execution option
  (fp32, bf16, channels_last, bf16 + channels_last, fp16 on CUDA, torch.compile with --compile), the GFLOP/s
  they achieve and their share of the device's nominal peak; which of them ``precision: auto`` (the default
  of srdiff-infer and basicsr.train) picks here;
- with --official PATH (a checkout of LeiaLi/SRDiff): the official code's own training iteration
  (GaussianDiffusion.forward, backward, Adam) and reverse step (p_sample) at the same size, with its defaults,
  and how many times faster ours is, with its defaults and at best;
- the loss curves of --curve-iters training iterations in fp32 and bf16 from the same seed and batches
  (photographs shipped with scikit-image), so a user sees what bf16 costs.
Writes a Markdown report (the README's "Speed" section).

    python scripts/benchmark_speed.py [--out results/benchmark_speed.md] [--official ../SRDiff] [--compile]
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import torch

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from benchmarking.speed import (SCALE, count_flops, machine, nominal_peak_gflops, paper_encoder,
                                paper_model, photo_batches, timed)
from srdiff_basicsr.execution import resolve_execution
from srdiff_basicsr.archs.arch_options import build_arch
from srdiff_basicsr.ops.resize import imresize

def configurations(device, compile):
    """(label, execution options) of every row; the same options go to train.* and val.*."""
    configs = [('fp32', {'precision': 'fp32'}), ('bf16', {'precision': 'bf16'}),
               ('channels_last', {'precision': 'fp32', 'channels_last': True}),
               ('bf16 + channels_last', {'precision': 'bf16', 'channels_last': True})]
    if device.startswith('cuda'):
        configs.insert(2, ('fp16', {'precision': 'fp16'}))
    if compile:
        configs.append(('bf16 + channels_last + compile',
                        {'precision': 'bf16', 'channels_last': True, 'compile': True}))
    return configs


def auto_label(device):
    precision, channels_last = resolve_execution('auto', None, device)
    return {('fp32', False): 'fp32', ('fp32', True): 'channels_last', ('bf16', False): 'bf16',
            ('bf16', True): 'bf16 + channels_last'}[precision, channels_last]


def our_steps(model, batch, lq, steps):
    """(a training iteration, ``steps`` DDIM steps of one image) of an SRDiffModel."""
    def train_step():
        model.feed_data(batch)
        model.optimize_parameters(1)
    return train_step, lambda: model.pipeline(lq, seed=0, sampler='ddim', steps=steps)


def official_training(path, args):
    """(GaussianDiffusion, Adam over its U-Net) of the official code in ``path``, with the CelebA config's
    hyper-parameters at this run's widths and a frozen encoder."""
    sys.path.insert(0, os.path.abspath(path))
    try:
        from models.diffsr_modules import RRDBNet, Unet
        from models.diffusion import GaussianDiffusion
        from utils.hparams import hparams
    except ImportError as error:
        sys.exit(f'--official {path}: not a checkout of the official SRDiff code ({error})')
    hparams.update(sr_scale=SCALE, rrdb_num_block=8, rrdb_num_feat=args.encoder_feat, hidden_size=args.dim,
                   use_attn=False, res=True, up_input=False, use_wn=False, weight_init=False, use_rrdb=True,
                   fix_rrdb=True, aux_l1_loss=False, aux_ssim_loss=False, aux_percep_loss=False,
                   beta_schedule='cosine', beta_s=0.008, timesteps=100, clip_input=True, res_rescale=2.0)
    torch.manual_seed(0)
    model = GaussianDiffusion(Unet(args.dim, out_dim=3, cond_dim=args.encoder_feat, dim_mults=(1, 2, 2, 4)),
                              RRDBNet(3, 3, args.encoder_feat, 8, args.encoder_feat // 2), timesteps=100,
                              loss_type='l1').to(args.device)
    return model, torch.optim.Adam([p for name, p in model.named_parameters() if 'rrdb' not in name], lr=2e-4)


def official_steps(model, optimizer, args, batch, lq):
    """(a training iteration, ``args.sample_steps`` reverse steps of one image) of the official ``model`` at this
    run's size and batch: its forward (loss), backward and Adam step; its data loader makes img_lr_up, so that
    is outside the step."""
    img_hr, img_lr = batch['gt'] * 2 - 1, batch['lq'] * 2 - 1
    img_lr_up = imresize(batch['lq'], SCALE) * 2 - 1

    def train_step():
        optimizer.zero_grad()
        losses, _, _ = model(img_hr, img_lr, img_lr_up)
        sum(losses.values()).backward()
        optimizer.step()

    with torch.no_grad():
        lr_up = imresize(lq, SCALE) * 2 - 1
        _, cond = model.rrdb(lq * 2 - 1, True)
        x = torch.randn_like(lr_up)
        t = torch.full((1,), 50, device=args.device, dtype=torch.long)

    @torch.no_grad()
    def sample_steps():
        for _ in range(args.sample_steps):
            model.p_sample(x, t, cond, lr_up)
    return train_step, sample_steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='results/benchmark_speed.md')
    parser.add_argument('--batch', type=int, default=4, help='training batch size (the paper: 16)')
    parser.add_argument('--hr-size', type=int, default=160, help='HR side (the paper: 160)')
    parser.add_argument('--dim', type=int, default=64, help='U-Net base width (the paper: 64)')
    parser.add_argument('--encoder-feat', type=int, default=32, help='encoder width (the paper: 32)')
    parser.add_argument('--rounds', type=int, default=3, help='alternating rounds of every configuration (median)')
    parser.add_argument('--train-iters', type=int, default=2, help='timed training iterations per round')
    parser.add_argument('--sample-steps', type=int, default=10, help='timed sampling steps per configuration')
    parser.add_argument('--curve-iters', type=int, default=30, help='iterations of the fp32 / bf16 loss curves')
    parser.add_argument('--compile', action='store_true', help='also time torch.compile (slow to compile on CPU)')
    parser.add_argument('--official', metavar='PATH', help='a checkout of the official SRDiff code to time too')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args()
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    workdir = tempfile.mkdtemp()
    encoder_path = os.path.join(workdir, 'encoder.pth')
    torch.manual_seed(0)
    torch.save({'params': build_arch(paper_encoder(args.encoder_feat)).state_dict()}, encoder_path)
    train_batch = photo_batches(1, args.batch, args.hr_size, args.device)[0]
    lq = train_batch['lq'][:1]

    fp32 = {'precision': 'fp32'}
    model = paper_model(args.device, encoder_path, args.dim, args.encoder_feat, fp32, fp32)
    model.feed_data(train_batch)
    train_flops, _ = count_flops(lambda: model.optimize_parameters(1))
    unet, pipe = model.pipeline.unet, model.pipeline
    with torch.no_grad():
        lr_up = pipe.space.reference(lq)
        cond = pipe.condition(lq, lr_up).at(None)
        t = torch.full((1,), 50.0, device=lr_up.device)
        step_flops, step_ops = count_flops(lambda: unet(torch.randn_like(lr_up), t, cond))

    # every configuration timed once per round, the rounds alternating, the median kept: a burst of other work
    # on a shared machine, and the order, then move no ratio much
    steps = {name: (options, our_steps(paper_model(args.device, encoder_path, args.dim, args.encoder_feat, options,
                                                   options), train_batch, lq, args.sample_steps))
             for name, options in configurations(args.device, args.compile)}
    if args.official:
        steps['official'] = ({'precision': 'fp32'}, official_steps(*official_training(args.official, args), args,
                                                                    train_batch, lq))
    times = {name: ([], []) for name in steps}
    for round_index in range(args.rounds):
        for name, (_, (train_step, sample_step)) in steps.items():
            times[name][0].append(timed(train_step, args.train_iters, args.device, warmup=round_index == 0))
            times[name][1].append(timed(sample_step, 1, args.device, warmup=round_index == 0) / args.sample_steps)
            print(f'round {round_index + 1}, {name}: training {times[name][0][-1]:.2f} s/iter, sampling '
                  f'{times[name][1][-1]:.3f} s/step', flush=True)
    rows = []
    for name, (options, _) in steps.items():
        if name != 'official':
            rows.append((name, float(np.median(times[name][0])), float(np.median(times[name][1])),
                         *nominal_peak_gflops(args.device, options['precision'])))
    official = ((float(np.median(times['official'][0])), float(np.median(times['official'][1])))
                if args.official else None)

    # loss curves, fp32 and bf16, from the same weights, batches and noise
    batches = photo_batches(args.curve_iters, args.batch, args.hr_size, args.device)
    curves = {}
    for precision in ('fp32', 'bf16'):
        model = paper_model(args.device, encoder_path, args.dim, args.encoder_feat, {'precision': precision})
        torch.manual_seed(1)
        curves[precision] = []
        for it, data in enumerate(batches, 1):
            model.feed_data(data)
            model.optimize_parameters(it)
            curves[precision].append(model.log_dict['l_noise'])
        print(f'{precision} loss curve: {" ".join(f"{v:.4f}" for v in curves[precision])}', flush=True)

    default = auto_label(args.device)
    by_name = {name: (train_s, sample_s) for name, train_s, sample_s, _, _ in rows}
    fp32_train, fp32_sample = by_name['fp32']
    share = lambda gflops, peak: f'{gflops / peak:.1%}' if peak else 'n/a'  # noqa: E731
    lines = ['# SRDiff speed by execution option, paper CelebA x8 networks', '',
             f'device: {args.device}, {machine(args.device)}; torch {torch.__version__}. All rows from one run, '
             f'the median of {args.rounds} alternating rounds; the ratios are against fp32 in that run.', '',
             f'- one training iteration (batch {args.batch}, {args.hr_size}x{args.hr_size}): '
             f'{train_flops / 1e9:.3g} GFLOP; one sampling step (one U-Net evaluation of a {args.hr_size}x'
             f'{args.hr_size} image): {step_flops / 1e9:.3g} GFLOP, of which convolutions '
             f'{step_ops.get("convolution", 0) / step_flops:.0%} (torch.utils.flop_counter)',
             f'- `precision: auto` (the default) picks **{default}** here; nominal peaks: '
             + '; '.join(sorted({f'{how} = {peak:,.0f} GFLOP/s' if peak else how for *_, peak, how in rows})), '',
             '| option | training s/iter | vs fp32 | GFLOP/s | share of peak | sampling s/step | vs fp32 | GFLOP/s '
             '| share of peak |', '|---|---|---|---|---|---|---|---|---|']
    for name, train_s, sample_s, peak, _ in rows:
        train_gflops, sample_gflops = train_flops / train_s / 1e9, step_flops / sample_s / 1e9
        lines.append(f'| {name}{" (default)" if name == default else ""} | {train_s:.3f} | {fp32_train / train_s:.2f}x'
                     f' | {train_gflops:.1f} | {share(train_gflops, peak)} | {sample_s:.4f} | '
                     f'{fp32_sample / sample_s:.2f}x | {sample_gflops:.1f} | {share(sample_gflops, peak)} |')
    if official:
        best_train, best_sample = min(t for _, t, *_ in rows), min(s for _, _, s, *_ in rows)
        default_train, default_sample = by_name[default]
        lines += ['', f'## Against the official code ({args.official}, fp32, its own training step and p_sample)', '',
                  f'Sampling: ours, one {args.sample_steps}-step DDIM call of one image (its encoder and set-up '
                  f'included) / {args.sample_steps}; the official code, {args.sample_steps} calls of p_sample (the '
                  'network and the update only). The official code trains on the batch as a data loader makes it '
                  '(HWC arrays permuted to CHW: channels_last strides), so its fp32 convolutions run in channels_last; '
                  'our fp32 row hands the network a contiguous batch (the exact path the golden tests pin), so the '
                  'same math in the same layout is our channels_last row.', '',
                  '| | training s/iter | sampling s/step |', '|---|---|---|',
                  f'| official | {official[0]:.3f} | {official[1]:.4f} |',
                  f'| ours, the same math and layout (fp32, channels_last) | {by_name["channels_last"][0]:.3f} '
                  f'({official[0] / by_name["channels_last"][0]:.2f}x) | {by_name["channels_last"][1]:.4f} '
                  f'({official[1] / by_name["channels_last"][1]:.2f}x) |',
                  f'| ours, default ({default}) | {default_train:.3f} ({official[0] / default_train:.2f}x) | '
                  f'{default_sample:.4f} ({official[1] / default_sample:.2f}x) |',
                  f'| ours, best row | {best_train:.3f} ({official[0] / best_train:.2f}x) | '
                  f'{best_sample:.4f} ({official[1] / best_sample:.2f}x) |']
    lines += ['', f'## Loss curves, fp32 and bf16 (same seed, weights and {args.curve_iters} batches of {args.batch} '
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

"""SRDiff and ECDP (eps-only, x0-only, hybrid, hybrid after image-quality fine-tuning) on the demo data.

    python scripts/benchmark_ecdp.py [--num-samples 3] [--retrain] [--models EXPERIMENT ...] [--out results/benchmark_ecdp]

Each model is trained by BasicSR's loop (``python -m srdiff_basicsr.train``) with the demo's data, frozen
encoder, budget and seed (options/demo_srdiff_x4.yml, demo_ecdp_eps_x4.yml, demo_ecdp_x0_x4.yml,
demo_ecdp_x4.yml, then demo_finetune_ecdp_x4.yml from the hybrid model); a model whose experiment folder has
its final weights is reused unless --retrain. Each samples the held-out images with its samplers (SRDiff: the
paper's DDPM and DDIM 20 with eta 1; ECDP: its probability-flow ODE and DDIM 20), --num-samples per image, image
i seeded with seed + i. The report gives PSNR, SSIM (on RGB, whole image, and on Y, border crop = scale),
ST-LPIPS, LR-PSNR, sigma, NFE, sampling seconds per image and the training seconds per iteration (median of
BasicSR's log); tiled against whole images: scripts/benchmark_tiles.py.
Needs the demo's data and encoder: run ``bash scripts/demo.sh`` first. Writes --out/report.md (an earlier
report is archived).
"""

import torch
import yaml

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from benchmarking.report import write_report
from benchmarking.sampling import load_pairs, run_config, smallest_image
from benchmarking.scoring import METRIC_COLUMNS, benchmark_metrics, protocol_line
from benchmarking.training import comparison_arguments, seconds_per_iteration, train
from srdiff_basicsr.diffusion.samplers import describe_sampler
from srdiff_basicsr.pipeline import SRDiffPipeline

ODE = {'type': 'ode'}
DDIM_20 = {'type': 'ddim', 'steps': 20}
MODELS = [  # label, options file, experiment, samplers; in training order (the fine-tuning starts from demo_ecdp_x4)
    ('SRDiff', 'options/demo_srdiff_x4.yml', 'demo_srdiff_x4', [{'type': 'ddpm'}, {**DDIM_20, 'eta': 1.0}]),
    ('ECDP eps-only', 'options/demo_ecdp_eps_x4.yml', 'demo_ecdp_eps_x4', [ODE, DDIM_20]),
    ('ECDP x0-only', 'options/demo_ecdp_x0_x4.yml', 'demo_ecdp_x0_x4', [ODE, DDIM_20]),
    ('ECDP hybrid', 'options/demo_ecdp_x4.yml', 'demo_ecdp_x4', [ODE, DDIM_20]),
    ('ECDP hybrid + image-quality fine-tuning', 'options/demo_finetune_ecdp_x4.yml', 'demo_finetune_ecdp_x4',
     [ODE, DDIM_20]),
]


def main():
    args = comparison_arguments(__doc__, 'results/benchmark_ecdp', [model[2] for model in MODELS])
    pairs = load_pairs(args.lr_dir, args.hr_dir)

    rows = []
    for label, options_file, name, samplers in [model for model in MODELS if model[2] in args.models]:
        train(options_file, name, args.retrain)
        pipe = SRDiffPipeline.from_pretrained(f'experiments/{name}', device=args.device)
        metrics, notes = benchmark_metrics(pipe.scale, device=args.device, shape=smallest_image(pairs))
        with open(options_file) as f:
            total_iter = yaml.safe_load(f)['train']['total_iter']
        for sampler in samplers:
            pipe.set_sampling(sampler=sampler)
            result, _ = run_config(pipe, pairs, args.num_samples, args.seed, metrics)
            result.update(sampler=describe_sampler(pipe.sampler_opt, pipe.schedule.num_timesteps),
                          train_s=seconds_per_iteration(name), iterations=total_iter,
                          params=sum(p.numel() for p in pipe.unet.parameters()))
            rows.append((label, result))
            print(f"{label}, {result['sampler']}: PSNR {result['psnr']:.2f}, NFE {result['nfe']}, "
                  f"{result['seconds']:.2f} s/image", flush=True)

    columns = [(key, title, fmt) for key, title, fmt in METRIC_COLUMNS if key in rows[0][1]]
    device = (torch.cuda.get_device_name() if args.device.startswith('cuda')
              else f'CPU ({torch.get_num_threads()} threads)')
    report = ['# SRDiff and ECDP on the demo data', '',
              '- training: options/demo_*_x4.yml, the same data, frozen encoder, batch, patch size, lr and seed; '
              'iterations per row (the fine-tuning row: its own steps after the hybrid model\'s)',
              f'- images: {", ".join(name for name, _, _ in pairs)} ({args.hr_dir}); {args.num_samples} samples per '
              f'image, seed {args.seed} + image index; device: {device}',
              f'- {protocol_line(metrics, pipe.scale)}',
              '- metrics: each the mean over samples and images; NFE: network '
              'evaluations per sample (the ODE\'s, adaptive, of the last image); s / image for all its samples; '
              "training s / iter: the median of BasicSR's logged iteration times",
              *[f'- {note}' for note in notes], '',
              '| model | sampler | ' + ' | '.join(title for _, title, _ in columns)
              + ' | NFE | sampling s / image | U-Net parameters | iterations | training s / iter |',
              '|---' * (len(columns) + 7) + '|']
    for label, r in rows:
        report.append(f"| {label} | {r['sampler']} | " + ' | '.join(format(r[key], fmt) for key, _, fmt in columns)
                      + f" | {r['nfe']} | {r['seconds']:.2f} | {r['params'] / 1e6:.2f}M | {r['iterations']:,} | "
                      f"{r['train_s']:.3f} |")
    write_report(args.out, report)


if __name__ == '__main__':
    main()

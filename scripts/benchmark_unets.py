"""SRDiff, SRDiff with the official middle attention, and SRADM side by side on the demo data.

    python scripts/benchmark_unets.py [--num-samples 3] [--retrain] [--models EXPERIMENT ...] [--out results/benchmark_unets]

Each model is trained by BasicSR's loop (``python -m srdiff_basicsr.train``) with the same data, encoder,
budget and seed (options/demo_srdiff_x4.yml, demo_srdiff_attn_x4.yml, demo_sradm_x4.yml); a model whose
experiment folder already has its final weights is reused unless --retrain. Then each samples the held-out
images (--num-samples per image, image i seeded with seed + i, 100-step DDPM) and the report gives PSNR,
SSIM (on RGB, whole image, and on Y, border crop = scale), ST-LPIPS, LR-PSNR, sigma, parameters, training
seconds per iteration (the median of BasicSR's logged iteration times) and sampling seconds per image (tiled
against whole images: scripts/benchmark_tiles.py). Needs the demo's data and encoder: run ``bash scripts/demo.sh`` first.
Writes --out/report.md (an earlier report is archived).
"""

import torch
import yaml

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from benchmarking.report import write_report
from benchmarking.sampling import load_pairs, run_config, smallest_image
from benchmarking.scoring import METRIC_COLUMNS, benchmark_metrics, protocol_line
from benchmarking.training import comparison_arguments, seconds_per_iteration, train
from srdiff_basicsr.pipeline import SRDiffPipeline

MODELS = [('SRDiff', 'options/demo_srdiff_x4.yml', 'demo_srdiff_x4'),
          ('SRDiff + middle attention (use_attn)', 'options/demo_srdiff_attn_x4.yml', 'demo_srdiff_attn_x4'),
          ('SRADM (window attention)', 'options/demo_sradm_x4.yml', 'demo_sradm_x4')]


def main():
    args = comparison_arguments(__doc__, 'results/benchmark_unets', [model[2] for model in MODELS])
    pairs = load_pairs(args.lr_dir, args.hr_dir)

    rows = []
    for label, options_file, name in [model for model in MODELS if model[2] in args.models]:
        train(options_file, name, args.retrain)
        pipe = SRDiffPipeline.from_pretrained(f'experiments/{name}', device=args.device)
        metrics, notes = benchmark_metrics(pipe.scale, device=args.device, shape=smallest_image(pairs))
        result, _ = run_config(pipe, pairs, args.num_samples, args.seed, metrics)
        with open(options_file) as f:
            train_opt = yaml.safe_load(f)['train']
        result.update(params=sum(p.numel() for p in pipe.unet.parameters()), train_s=seconds_per_iteration(name),
                      encoder_params=sum(p.numel() for p in pipe.encoder.parameters()),
                      recipe=f"{train_opt['optim_g']['lr']:g}, {max(train_opt.get('warmup_iter', -1), 0)}")
        rows.append((label, result))
        print(f"{label}: PSNR {result['psnr']:.2f}, {result['seconds']:.2f} s/image", flush=True)

    columns = [(key, title, fmt) for key, title, fmt in METRIC_COLUMNS if key in rows[0][1]]
    device = (torch.cuda.get_device_name() if args.device.startswith('cuda')
              else f'CPU ({torch.get_num_threads()} threads)')
    with open(MODELS[0][1]) as f:
        budget = yaml.safe_load(f)['train']['total_iter']
    report = ['# SRDiff, SRDiff + middle attention, SRADM on the demo data', '',
              f'- the same training (options/demo_*_x4.yml: data, frozen encoder, {budget:,} iterations, seed 0); '
              f'images: {", ".join(name for name, _, _ in pairs)} ({args.hr_dir}); {args.num_samples} samples '
              f'per image, seed {args.seed} + image index, 100-step DDPM; device: {device}',
              f'- {protocol_line(metrics, pipe.scale)}',
              '- metrics: each the mean over samples and images; parameters of '
              f"the U-Net (the encoder's {rows[0][1]['encoder_params'] / 1e6:.2f}M, the same for all, left out); "
              "training s / iter: the median of BasicSR's logged iteration times; sampling s / image for all its "
              'samples',
              *[f'- {note}' for note in notes], '',
              '| model | lr, warm-up iterations | ' + ' | '.join(title for _, title, _ in columns)
              + ' | U-Net parameters | training s / iter | sampling s / image |', '|---' * (len(columns) + 5) + '|']
    for label, r in rows:
        report.append(f"| {label} | {r['recipe']} | " + ' | '.join(format(r[key], fmt) for key, _, fmt in columns)
                      + f" | {r['params'] / 1e6:.2f}M | {r['train_s']:.3f} | {r['seconds']:.2f} |")
    write_report(args.out, report)


if __name__ == '__main__':
    main()

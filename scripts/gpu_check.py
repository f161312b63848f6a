"""What only a GPU can show, in one run of a few minutes on one GPU, ending with one table:
- the golden tests (SRDiff's, and ECDP's on the device) on CUDA with TF32 off (``SRDIFF_TEST_DEVICE=cuda``);
- one training iteration of the paper's CelebA x8 networks in fp32, bf16 and fp16 (with the gradient scaler):
  a finite loss, weights still float32, seconds per iteration;
- torch.compile: the compiled training step and sampling step, and the compiled sample against the eager one;
- sampling seconds per step for each execution option, and which one ``precision: auto`` picks;
- with two or more GPUs: a 2-process nccl training step (torchrun) whose ranks end with the same weights.

    bash scripts/gpu_check.sh [--device cuda:0] [--skip-golden]

Without CUDA it stops at once with one line (exit status 2).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_GOLDEN = ['tests/test_golden.py', 'tests/test_ecdp_golden.py::test_rrdb_features_residual_base_and_condition_'
                 'at_every_level', 'tests/test_ecdp_golden.py::test_the_unet_at_the_recorded_times',
                 'tests/test_ecdp_golden.py::test_the_ancestral_chain_steps_as_ecdps',
                 'tests/test_ecdp_golden.py::test_ddim_over_every_step_and_from_an_earlier_start',
                 'tests/test_ecdp_golden.py::test_the_probability_flow_ode_evaluates_where_ecdps_does']


def golden_on_cuda(device):
    """('passed' | 'FAILED', the pytest summary line) of the device-aware golden tests on ``device``."""
    env = dict(os.environ, SRDIFF_TEST_DEVICE=device, NVIDIA_TF32_OVERRIDE='0')
    run = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *DEVICE_GOLDEN], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    summary = (run.stdout.strip().splitlines() or ['no output'])[-1]
    return ('passed' if run.returncode == 0 else 'FAILED'), summary


def training_rows(device, encoder_path, batch):
    """One training iteration per precision: (label, verdict, detail)."""
    from benchmarking.speed import paper_model, timed
    rows = []
    for precision in ('fp32', 'bf16', 'fp16'):
        model = paper_model(device, encoder_path, train_opt={'precision': precision, 'channels_last': True})
        model.feed_data(batch)
        seconds = timed(lambda: model.optimize_parameters(1), 2, device)
        loss = model.log_dict['l_noise']
        dtypes = {p.dtype for p in model.net_g.parameters()}
        scaler = model.grad_scaler is not None
        ok = torch.isfinite(torch.tensor(loss)).item() and dtypes == {torch.float32} and scaler == (precision == 'fp16')
        rows.append((f'training iteration, {precision}', 'passed' if ok else 'FAILED',
                     f'{seconds:.3f} s/iter, l_noise {loss:.4f}, weights {sorted(map(str, dtypes))}'
                     f'{", gradient scaler" if scaler else ""}'))
    return rows


def sampling_rows(device, encoder_path, lq, steps):
    """Seconds per sampling step per execution option, and compiled against eager: (label, verdict, detail)."""
    from benchmarking.speed import paper_model, timed
    from srdiff_basicsr.execution import resolve_execution
    options = [('fp32', {'precision': 'fp32'}), ('bf16', {'precision': 'bf16'}), ('fp16', {'precision': 'fp16'}),
               ('fp32 + channels_last', {'precision': 'fp32', 'channels_last': True}),
               ('bf16 + channels_last', {'precision': 'bf16', 'channels_last': True}),
               ('bf16 + channels_last + compile', {'precision': 'bf16', 'channels_last': True, 'compile': True})]
    rows, samples = [], {}
    for label, option in options:
        pipe = paper_model(device, encoder_path, val_opt=option).pipeline
        start = time.perf_counter()
        pipe(lq, seed=0, sampler='ddim', steps=2)  # warm-up (and compilation)
        first = time.perf_counter() - start
        seconds = timed(lambda: pipe(lq, seed=0, sampler='ddim', steps=steps), 1, device) / steps
        samples[label] = pipe(lq, seed=0, sampler='ddim', steps=steps)
        extra = f', first call {first:.1f} s (compilation)' if option.get('compile') else ''
        rows.append((f'sampling, {label}', 'measured', f'{seconds * 1000:.1f} ms/step{extra}'))
    difference = (samples['bf16 + channels_last + compile'] - samples['bf16 + channels_last']).abs().max().item()
    rows.append(('compiled sample vs eager (bf16)', 'passed' if difference < 2 / 255 else 'FAILED',
                 f'max |difference| {difference * 255:.3f} / 255'))
    precision, channels_last = resolve_execution('auto', None, device)
    rows.append(('precision: auto picks', 'measured', f'{precision}{" + channels_last" if channels_last else ""}'))
    return rows


NCCL_WORKER = '''
import torch, torch.distributed as dist
from srdiff_basicsr.archs.arch_options import build_arch
cuda = torch.cuda.is_available()  # gloo on a CPU: the same worker, to try it without a GPU
dist.init_process_group('nccl' if cuda else 'gloo')
rank = dist.get_rank()
device = torch.device('cuda', rank) if cuda else torch.device('cpu')
torch.manual_seed(0)
unet = build_arch(dict(type='SRDiffUNet', dim=16, dim_mults=[1, 2], scale=4, encoder_num_feat=8,
                       encoder_num_block=2)).to(device)
model = torch.nn.parallel.DistributedDataParallel(unet, device_ids=[rank] if cuda else None)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
torch.manual_seed(rank + 1)  # different data on each rank
x, lr_up = torch.randn(2, 3, 32, 32, device=device), torch.randn(2, 3, 32, 32, device=device)
cond = unet.project_condition([torch.randn(2, 8, 8, 8, device=device) for _ in range(3)], lr_up)  # as training
model(x, torch.tensor([3.0, 7.0], device=device), cond).abs().mean().backward()
optimizer.step()
flat = torch.cat([p.detach().flatten() for p in unet.parameters()])
gathered = [torch.empty_like(flat) for _ in range(2)]
dist.all_gather(gathered, flat)
if rank == 0:
    print('EQUAL' if torch.equal(gathered[0], gathered[1]) else 'DIFFERENT')
dist.destroy_process_group()
'''


def nccl_row():
    if torch.cuda.device_count() < 2:
        return ('2-process nccl step', 'skipped', f'{torch.cuda.device_count()} GPU here; needs 2')
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        f.write(NCCL_WORKER)
    run = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                          f.name], cwd=REPO, capture_output=True, text=True, timeout=180)
    ok = run.returncode == 0 and 'EQUAL' in run.stdout.split()
    detail = 'ranks end with the same weights' if ok else (run.stderr.strip().splitlines() or ['no output'])[-1]
    return ('2-process nccl step', 'passed' if ok else 'FAILED', detail)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda:0')
    parser.add_argument('--skip-golden', action='store_true')
    parser.add_argument('--steps', type=int, default=10, help='timed sampling steps per option')
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f'gpu_check: no CUDA device here (torch {torch.__version__}, built for CUDA {torch.version.cuda}); '
              'run it on a GPU machine', file=sys.stderr)
        return 2
    import srdiff_basicsr.plugin  # noqa: F401  (registration)
    from benchmarking.speed import paper_encoder, photo_batches
    from srdiff_basicsr.archs.arch_options import build_arch
    started = time.perf_counter()
    rows = []
    if not args.skip_golden:
        rows.append(('golden tests on CUDA, TF32 off', *golden_on_cuda(args.device)))
    workdir = tempfile.mkdtemp()
    encoder_path = os.path.join(workdir, 'encoder.pth')
    torch.manual_seed(0)
    torch.save({'params': build_arch(paper_encoder()).state_dict()}, encoder_path)
    batch = photo_batches(1, 4, 160, args.device)[0]
    for step in (lambda: training_rows(args.device, encoder_path, batch),
                 lambda: sampling_rows(args.device, encoder_path, batch['lq'][:1], args.steps),
                 lambda: [nccl_row()]):
        try:
            rows += step()
        except Exception as error:  # noqa: BLE001  (a failed check is a row of the table, not the end of the run)
            rows.append(('(check)', 'FAILED', f'{type(error).__name__}: {str(error).splitlines()[0]}'))
    print(f'\n# GPU check: {torch.cuda.get_device_name(args.device)}, torch {torch.__version__}, CUDA '
          f'{torch.version.cuda}, {time.perf_counter() - started:.0f} s\n')
    print('| check | result | detail |\n|---|---|---|')
    for label, verdict, detail in rows:
        print(f'| {label} | {verdict} | {detail} |')
    return 1 if any(verdict == 'FAILED' for _, verdict, _ in rows) else 0


if __name__ == '__main__':
    sys.exit(main())

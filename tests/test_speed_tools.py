"""The speed tools: FLOPs, nominal peaks and the op profile (benchmarking.speed), the speed
benchmark's report with a stand-in official tree, and the GPU check on a machine without CUDA."""
import os
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from benchmarking import speed
from tests.conftest import REPO, load_script


def test_flops_are_counted_as_the_closed_form_of_a_convolution_and_a_linear_layer():
    conv, linear = nn.Conv2d(3, 8, 3), nn.Linear(16, 4)
    total, per_op = speed.count_flops(lambda: (conv(torch.rand(1, 3, 10, 10)), linear(torch.rand(5, 16))))
    conv_flops = 2 * (8 * 8 * 8) * (3 * 3 * 3)  # two per multiply-add: 8 maps of 8x8 outputs, 27 taps each
    linear_flops = 2 * 5 * 16 * 4
    assert per_op == {'convolution': conv_flops, 'addmm': linear_flops} and total == conv_flops + linear_flops


@pytest.mark.parametrize('flags, precision, expected', [({'avx512f', 'avx2'}, 'fp32', 2 * 2.0 * 64),
                                                        ({'avx2'}, 'fp32', 2 * 2.0 * 32),
                                                        ({'avx512f', 'amx_bf16'}, 'bf16', 2 * 2.0 * 1024),
                                                        ({'avx512f'}, 'bf16', 2 * 2.0 * 64),  # emulated: fp32's
                                                        (set(), 'fp32', None)])
def test_a_cpus_nominal_peak_is_cores_times_clock_times_its_widest_fma(monkeypatch, flags, precision, expected):
    monkeypatch.setattr(speed, 'cpu_flags', lambda: flags)
    monkeypatch.setattr(speed, 'cpu_clock_ghz', lambda: 2.0)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    peak, how = speed.nominal_peak_gflops('cpu', precision)
    assert peak == expected
    if expected:
        assert how == f'2 cores x 2.00 GHz x {int(expected / 4)} FLOP/cycle'


@pytest.mark.parametrize('op, category', [
    ('aten::mkldnn_convolution', 'convolution'), ('aten::convolution_backward', 'convolution'),
    ('aten::native_group_norm', 'normalisation'), ('aten::addmm', 'attention and matrix products'),
    ('aten::_scaled_dot_product_flash_attention_for_cpu', 'attention and matrix products'),
    ('aten::reflection_pad2d', 'padding, casts and copies'), ('aten::_to_copy', 'padding, casts and copies'),
    ('aten::mish', 'element-wise and other'), ('aten::add_', 'element-wise and other')])
def test_profiled_ops_fall_in_their_category(op, category):
    assert speed.op_category(op) == category


def test_the_profile_splits_a_call_by_kind_of_op():
    net = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.Mish())
    seconds = speed.profile_by_category(lambda: net(torch.rand(1, 8, 32, 32)), 'cpu', repeats=2)
    assert seconds['convolution'] > 0 and seconds['normalisation'] > 0 and seconds['element-wise and other'] > 0
    assert seconds['attention and matrix products'] == 0


STAND_IN = {  # the official code's layout and calls (LeiaLi/SRDiff: models/, utils/hparams.py), tiny bodies
    'utils/hparams.py': 'hparams = {}\n',
    'models/diffsr_modules.py': '''
import torch
from torch import nn
from utils.hparams import hparams


class RRDBNet(nn.Module):
    def __init__(self, in_nc, out_nc, nf, nb, gc=32):
        super().__init__()
        self.conv = nn.Conv2d(in_nc, nf, 3, padding=1)
        self.nb = nb

    def forward(self, x, get_fea=False):
        fea = self.conv(x)
        return x, [fea] * (self.nb + 1)


class Unet(nn.Module):
    def __init__(self, dim, out_dim=None, dim_mults=(1, 2, 4, 8), cond_dim=32):
        super().__init__()
        s = hparams['sr_scale']
        self.cond_proj = nn.ConvTranspose2d(cond_dim * ((hparams['rrdb_num_block'] + 1) // 3), dim, 2 * s, s, s // 2)
        self.conv = nn.Conv2d(3, dim, 3, padding=1)
        self.out = nn.Conv2d(dim, out_dim, 1)

    def forward(self, x, time, cond, img_lr_up):
        return self.out(self.conv(x) + self.cond_proj(torch.cat(cond[2::3], 1)))
''',
    'models/diffusion.py': '''
import torch
from torch import nn
from utils.hparams import hparams


class GaussianDiffusion(nn.Module):
    def __init__(self, denoise_fn, rrdb_net, timesteps=1000, loss_type='l1'):
        super().__init__()
        self.denoise_fn, self.rrdb = denoise_fn, rrdb_net
        assert hparams['beta_schedule'] == 'cosine' and hparams['fix_rrdb']

    def forward(self, img_hr, img_lr, img_lr_up, t=None):
        with torch.no_grad():
            _, cond = self.rrdb(img_lr, True)
        t = torch.randint(0, 100, (img_hr.shape[0],))
        noise = torch.randn_like(img_hr)
        return {'q': (self.denoise_fn(img_hr + noise, t, cond, img_lr_up) - noise).abs().mean()}, None, t

    @torch.no_grad()
    def p_sample(self, x, t, cond, img_lr_up):
        return x - 0.1 * self.denoise_fn(x, t, cond, img_lr_up), x
''',
}


def ratio_within_rounding(ratio, numerator, denominator):
    """The printed ratio agrees with the printed numbers up to each one's rounding (the last digit's half unit)."""
    def bounds(text):
        half = 0.5 * 10 ** -len(text.partition('.')[2])
        return float(text) - half, float(text) + half
    (r_lo, r_hi), (n_lo, n_hi), (d_lo, d_hi) = bounds(ratio), bounds(numerator), bounds(denominator)
    return n_lo / d_hi <= r_hi and r_lo <= n_hi / d_lo


def test_the_speed_report_has_flops_peaks_the_default_and_the_official_ratio(tmp_path, monkeypatch):
    for name, text in STAND_IN.items():
        (tmp_path / 'official' / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'official' / name).write_text(text)
    script = load_script('benchmark_speed.py')
    # every timing a different number (each step still runs once, for its errors): a ratio taken from the wrong
    # row cannot agree with the printed times by rounding
    seconds = iter(range(1, 1000))
    monkeypatch.setattr(script, 'timed', lambda fn, repeats, device, warmup=True: (fn(), next(seconds) / 7)[1])
    out = tmp_path / 'speed.md'
    monkeypatch.setattr(sys, 'argv', ['benchmark_speed.py', '--out', str(out), '--batch', '2', '--hr-size', '32',
                                      '--dim', '8', '--encoder-feat', '8', '--train-iters', '1', '--sample-steps', '2',
                                      '--curve-iters', '2', '--device', 'cpu', '--official', str(tmp_path / 'official')])
    monkeypatch.setattr(sys, 'path', list(sys.path))  # the script puts the official tree first
    monkeypatch.setenv('SRDIFF_AUTO_EXECUTION', 'fp32')  # the rows below: auto as on a CPU without native bf16
    for module in ('models', 'models.diffsr_modules', 'models.diffusion', 'utils', 'utils.hparams'):
        monkeypatch.delitem(sys.modules, module, raising=False)
    script.main()
    report = out.read_text()
    flops = re.search(r'one training iteration \(batch 2, 32x32\): ([\d.]+) GFLOP; one sampling step .*: ([\d.]+) '
                      r'GFLOP, of which convolutions (\d+)%', report)
    assert flops and float(flops[1]) > float(flops[2]) > 0 and flops[3] == '100'  # a U-Net without attention
    assert '`precision: auto` (the default) picks **fp32** here' in report
    rows = {m[0]: [float(v) for v in m[1:]] for m in re.findall(
        r'^\| ([a-z0-9_ +]+?)(?: \(default\))? \| ([\d.]+) \| [\d.]+x \| ([\d.]+) \| [^|]+ \| ([\d.]+) \| [\d.]+x \| '
        r'([\d.]+) \|', report, re.M)}
    assert list(rows) == ['fp32', 'bf16', 'channels_last', 'bf16 + channels_last']
    official = re.search(r'^\| official \| ([\d.]+) \| ([\d.]+) \|$', report, re.M)
    default = re.search(r'^\| ours, default \(fp32\) \| ([\d.]+) \(([\d.]+)x\) \| ([\d.]+) \(([\d.]+)x\) \|$',
                        report, re.M)
    same_layout = re.search(r'^\| ours, the same math and layout \(fp32, channels_last\) \| ([\d.]+) \(([\d.]+)x\) \| '
                            r'([\d.]+) \(([\d.]+)x\) \|$', report, re.M)
    assert official and default and same_layout
    assert ratio_within_rounding(same_layout[2], official[1], same_layout[1])
    assert float(same_layout[1]) == rows['channels_last'][0]  # our channels_last row's time
    train_row, sample_row = re.search(r'^\| fp32 \(default\) \| ([\d.]+) \|(?:[^|]+\|){3} ([\d.]+) \|',
                                      report, re.M).groups()
    assert ratio_within_rounding(default[2], official[1], train_row)
    assert ratio_within_rounding(default[4], official[2], sample_row)
    assert 'bf16 vs fp32 loss, per iteration' in report


def test_the_gpu_check_stops_in_one_line_without_cuda():
    run = subprocess.run(['bash', 'scripts/gpu_check.sh'], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert run.returncode == 2 and run.stdout == ''
    assert re.fullmatch(r'gpu_check: no CUDA device here \(torch .*\); run it on a GPU machine\n', run.stderr)


def test_the_training_profile_splits_each_iteration_into_parts_that_add_up(tmp_path, monkeypatch):
    for name, text in STAND_IN.items():
        (tmp_path / 'official' / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'official' / name).write_text(text)
    backward = torch.Tensor.backward
    out = tmp_path / 'profile.md'
    monkeypatch.setattr(sys, 'argv', ['profile_training.py', '--out', str(out), '--batch', '2', '--hr-size', '32',
                                      '--dim', '8', '--encoder-feat', '8', '--iters', '2', '--device', 'cpu',
                                      '--official', str(tmp_path / 'official')])
    monkeypatch.setattr(sys, 'path', list(sys.path))
    monkeypatch.setenv('SRDIFF_AUTO_EXECUTION', 'bf16+channels_last')
    for module in ('models', 'models.diffsr_modules', 'models.diffusion', 'utils', 'utils.hparams'):
        monkeypatch.delitem(sys.modules, module, raising=False)
    load_script('profile_training.py').main()
    assert torch.Tensor.backward is backward  # unwrapped again
    lines = out.read_text().splitlines()
    header = next(line for line in lines if line.startswith('| part |'))
    assert header == '| part | ours, fp32 | ours, default: bf16 + channels_last | official (fp32) |'
    table = {cells[0]: cells[1:] for cells in (
        [c.strip() for c in line.strip('|').split('|')] for line in lines if line.startswith('| ') and '---' not in line)}
    for column in range(3):
        parts = [float(cells[column]) for name, cells in table.items()
                 if name not in ('part', '**iteration**') and cells[column] != '-']
        assert sum(parts) == pytest.approx(float(table['**iteration**'][column]), abs=0.05 * len(parts) + 0.05)
        assert float(table['U-Net forward'][column]) > 0 and float(table['backward'][column]) > 0
    assert table['divergence guard'][2] == '-' and float(table['divergence guard'][0]) > 0  # ours only
    assert float(table['encoder features'][2]) > 0 and float(table['Adam step'][2]) > 0  # the official's wrapped

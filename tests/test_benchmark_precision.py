"""scripts/benchmark_precision.py on tiny stand-ins of demo experiments (no training): both precisions per model,
their differences, and the experiments that are missing left out."""
import re
import sys

import pytest

from tests.conftest import load_script, make_experiment, make_pairs


def test_each_model_samples_in_fp32_and_bf16_with_the_same_noise(tmp_path, monkeypatch):
    script = load_script('benchmark_precision.py')
    monkeypatch.chdir(tmp_path)
    make_experiment(tmp_path / 'experiments' / 'demo_srdiff_x4', timesteps=5)
    make_experiment(tmp_path / 'experiments' / 'demo_sradm_x4', timesteps=4)
    lr_dir, hr_dir = make_pairs(tmp_path / 'data', count=2, hr_size=24)
    monkeypatch.setattr(sys, 'argv', ['benchmark_precision.py', '--lr-dir', lr_dir, '--hr-dir', hr_dir,
                                      '--num-samples', '2', '--device', 'cpu'])
    script.main()
    report = (tmp_path / 'results' / 'benchmark_precision' / 'report.md').read_text()
    rows = re.findall(r'^\| (demo_\w+) \| ([^|]+) \| (fp32|bf16 \+ channels_last) \| ([\d.]+) \|', report, re.M)
    assert [(name, precision) for name, _, precision, _ in rows] == [  # demo_ecdp_x4 and the others: not there
        ('demo_srdiff_x4', 'fp32'), ('demo_srdiff_x4', 'bf16 + channels_last'),
        ('demo_sradm_x4', 'fp32'), ('demo_sradm_x4', 'bf16 + channels_last')]
    assert rows[0][1] == 'DDPM, 5 steps' and rows[2][1] == 'DDPM, 4 steps'  # each model's own sampler
    number = r'([\d.]+) / ([\d.]+) \(([+-][\d.]+)\)'
    checks = re.findall(rf'^\| (demo_\w+) \| {number} \| {number} \| (yes|\*\*no\*\*) \| ([\d.]+) \| ([\d.]+) \|$',
                        report, re.M)
    assert [name for name, *_ in checks] == ['demo_srdiff_x4', 'demo_sradm_x4']
    psnr = {(name, precision): float(value) for name, _, precision, value in rows}
    for name, exact, fast, d_psnr, exact_lr, fast_lr, d_lr, within, top, mean in checks:
        assert float(exact) == pytest.approx(psnr[name, 'fp32'], abs=0.006)  # the same run as the rows
        assert float(d_psnr) == pytest.approx(float(fast) - float(exact), abs=0.0011)  # bf16 minus fp32
        assert float(d_lr) == pytest.approx(float(fast_lr) - float(exact_lr), abs=0.0011)
        assert (within == 'yes') == (abs(float(d_psnr)) <= 0.05 and abs(float(d_lr)) <= 0.05)
        assert float(top) > 0 and 0 < float(mean) <= float(top)  # bf16 did change the samples, a little

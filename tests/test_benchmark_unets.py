"""scripts/benchmark_unets.py on tiny stand-ins of the three demo experiments (no training): one row per model;
scripts/benchmark_tiles.py on two of them."""
import re
import sys

import pytest

from tests.conftest import TINY_UNET, load_script, make_experiment, make_pairs


def test_unet_comparison_reports_each_model_with_its_logged_training_time(tmp_path, monkeypatch):
    script = load_script('benchmark_unets.py')
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'options').mkdir()
    for (_, options_file, _), warmup in zip(script.MODELS, (-1, 500, -1)):
        (tmp_path / options_file).write_text(f'train: {{total_iter: 3000, optim_g: {{lr: 0.0005}}, '
                                             f'warmup_iter: {warmup}}}\n')
    make_experiment(tmp_path / 'experiments' / 'demo_rrdb_x4').joinpath('models', 'net_g_latest.pth').touch()
    for seconds, (_, _, name) in zip((0.5, 0.7, 0.9), script.MODELS):
        windows = dict(TINY_UNET, window_attn_levels=[1], window_size=12, window_heads=2) if 'sradm' in name else None
        make_experiment(tmp_path / 'experiments' / name, timesteps=3, network_g=windows)
        (tmp_path / 'experiments' / name / f'train_{name}_20261123.log').write_text(
            f'[iter: 100, time (data): {seconds - 0.1:.3f} (0.001)] l_noise: 1\n'
            f'[iter: 150, time (data): {seconds:.3f} (0.001)] l_noise: 1\n'
            f'[iter: 200, time (data): {seconds + 5:.3f} (0.001)] l_noise: 1\n')  # a burst of load: the median
    lr_dir, hr_dir = make_pairs(tmp_path / 'data', count=2, hr_size=24)
    monkeypatch.setattr(sys, 'argv', ['benchmark_unets.py', '--lr-dir', lr_dir, '--hr-dir', hr_dir,
                                      '--num-samples', '2', '--device', 'cpu'])
    script.main()
    report = (tmp_path / 'results' / 'benchmark_unets' / 'report.md').read_text()
    assert '3,000 iterations' in report
    rows = re.findall(r'^\| (SR[^|]+?) \| ([^|]+) \| .* \| ([\d.]+)M \| ([\d.]+) \| ([\d.]+) \|$', report, re.M)
    assert [label for label, *_ in rows] == [label for label, _, _ in script.MODELS]
    assert [recipe for _, recipe, *_ in rows] == ['0.0005, 0', '0.0005, 500', '0.0005, 0']
    rows = [(label, *rest) for label, _, *rest in rows]
    assert [float(train_s) for _, _, train_s, _ in rows] == pytest.approx([0.5, 0.7, 0.9])
    assert '| ST-LPIPS ↓ |' in report


def test_tiles_cover_several_tiles_on_each_models_grid_and_differ_little(tmp_path, monkeypatch):
    script = load_script('benchmark_tiles.py')
    monkeypatch.chdir(tmp_path)
    make_experiment(tmp_path / 'experiments' / 'demo_srdiff_x4', timesteps=20)
    make_experiment(tmp_path / 'experiments' / 'demo_sradm_x4', timesteps=20,
                    network_g=dict(TINY_UNET, window_attn_levels=[1], window_size=12, window_heads=2))
    monkeypatch.setattr(sys, 'argv', ['benchmark_tiles.py', '--size', '96', '--device', 'cpu'])
    script.main()
    report = (tmp_path / 'results' / 'benchmark_tiles' / 'report.md').read_text()
    rows = re.findall(r'^\| (demo_\w+) \| (\w+) \| (\d+) \(grid (\d+)\) \| (\d+) \| ([\d.e-]+) \| ([\d.e-]+) \|', report,
                      re.M)
    assert [(name, image) for name, image, *_ in rows] == [
        (name, image) for name in ('demo_srdiff_x4', 'demo_sradm_x4') for image in ('astronaut', 'coffee', 'chelsea')]
    # 96 HR pixels: SRDiff's 64-pixel tiles start at 0 and 32; SRADM's are 72 (a multiple of its 24-pixel grid)
    # and start at 0 and 24: 2 x 2 tiles each
    assert {(name, int(side), int(grid), int(tiles)) for name, _, side, grid, tiles, *_ in rows} == {
        ('demo_srdiff_x4', 64, 1, 4), ('demo_sradm_x4', 72, 24, 4)}
    assert all(0 < float(mean) <= float(top) for *_, top, mean in rows)  # tiled for real, not the whole image

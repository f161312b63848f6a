"""scripts/benchmark.py on tiny models: the table, the per-image numbers, the grids."""
import csv
import re

import cv2
import numpy as np
import pytest
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from basicsr.utils.matlab_functions import imresize as basicsr_imresize
from torch.utils.data import DataLoader

from benchmarking.grid import HEADER, comparison_grid, detail_crop
from benchmarking.methods import build_basicsr_model
from srdiff_basicsr.data import CheckedPairedImageDataset
from tests.conftest import (TINY_UNET, dataset_opt, load_script, save_basicsr_weights, srdiff_options,
                            tiny_data_and_encoder, write_options)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench')
    lr_dir, hr_dir, encoder = tiny_data_and_encoder(root, hr_size=32)
    unet = save_basicsr_weights(build_network(dict(TINY_UNET, scale=4, encoder_num_feat=8, encoder_num_block=2)),
                                root / 'unet.pth')
    opt = srdiff_options('bench', lr_dir, hr_dir, encoder, is_train=False, timesteps=10)
    opt['path']['pretrain_network_g'] = unet
    srdiff_opt = write_options(root / 'srdiff.yml', opt)
    other = dict(name='other', model_type='SRModel', scale=4, num_gpu=0,
                 network_g=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4),
                 path=dict(pretrain_network_g=None))
    other['path']['pretrain_network_g'] = save_basicsr_weights(build_network(dict(other['network_g'])),
                                                               root / 'other.pth')
    return root, lr_dir, hr_dir, srdiff_opt, write_options(root / 'other.yml', other)


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_benchmark_writes_table_per_image_metrics_and_grids(setup):
    root, lr_dir, hr_dir, srdiff_opt, other_opt = setup
    out = root / 'report'
    load_script('benchmark.py').main(['-opt', srdiff_opt, '--model', f'Other RRDBNet={other_opt}', '--num-samples', '2',
                        '--lpips-random-trunk', '--device', 'cpu', '--out', str(out)])
    report = (out / 'report.md').read_text()
    assert '- protocol: paper (RGB, no border crop) for PSNR and SSIM' in report
    assert '| Method | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ | ST-LPIPS ↓ | LR-PSNR (dB) ↑ | sigma | s / image |' in report
    for method in ('Bicubic', 'RRDB (L1 encoder)', 'SRDiff (DDPM, 10 steps)', 'Other RRDBNet'):
        assert re.search(rf'^\| {re.escape(method)} \|', report, re.M), method

    rows = read_rows(out / 'metrics_tiny_test.csv')
    assert len(rows) == 2 * 4
    for name in ('000', '001'):
        hr = cv2.imread(f'{hr_dir}/{name}.png')
        lr = cv2.imread(f'{lr_dir}/{name}.png')
        bicubic = np.clip(basicsr_imresize(lr / 255, 4) * 255, 0, 255).round().astype(np.uint8)  # BasicSR's port
        row = next(r for r in rows if r['image'] == name and r['method'] == 'Bicubic')
        assert float(row['psnr']) == pytest.approx(calculate_psnr(bicubic, hr, 0), abs=0.02)
        assert float(row['sigma']) == 0
    assert all(float(r['sigma']) > 0 for r in rows if r['method'].startswith('SRDiff'))

    # SRDiff's numbers are those of its own test pipeline (same per-image seeds)
    model, opt = build_basicsr_model(srdiff_opt, 'cpu')
    model.opt['val']['num_samples'] = 2
    model.opt['path']['results_root'] = str(root)
    loader = DataLoader(CheckedPairedImageDataset(dataset_opt('tiny_test', lr_dir, hr_dir, 'test')), batch_size=1)
    model.validation(loader, current_iter='x', tb_logger=None, save_img=False)
    pipeline = read_rows(root / 'metrics_tiny_test.csv')
    assert [float(r['psnr']) for r in rows if r['method'].startswith('SRDiff')] == pytest.approx(
        [float(r['psnr']) for r in pipeline], abs=1e-5)

    # one grid per image: LR, bicubic, RRDB, 2 samples, the other model, HR; 32x32 tiles under labels
    for name in ('000', '001'):
        grid = cv2.imread(str(out / 'grids' / 'tiny_test' / f'{name}.png'))
        assert grid.shape == (HEADER + 32, 7 * 32, 3)
        assert np.array_equal(grid[HEADER:, -32:], cv2.imread(f'{hr_dir}/{name}.png'))

    # a rerun archives the earlier report instead of overwriting it
    load_script('benchmark.py').main(['-opt', srdiff_opt, '--lpips', 'off', '--device', 'cpu', '--out', str(out)])
    assert len(list(root.glob('report_archived_*'))) == 1 and '| LPIPS ↓' not in (out / 'report.md').read_text()


def test_benchmark_errors_name_the_problem(setup, capsys):
    root, _, _, srdiff_opt, other_opt = setup
    script = load_script('benchmark.py')
    with pytest.raises(SystemExit):
        script.parse_args(['-opt', srdiff_opt, '--model', other_opt])
    assert 'expected NAME=OPTIONS_FILE' in capsys.readouterr().err
    with pytest.raises(Exception, match='model_type is SRModel, expected SRDiffModel'):
        script.main(['-opt', other_opt, '--device', 'cpu', '--out', str(root / 'x')])


def test_grids_of_large_images_crop_the_most_detailed_region():
    hr = np.full((400, 300, 3), 128, np.uint8)
    hr[250:330, 40:120] = np.random.default_rng(0).integers(0, 256, (80, 80, 3))  # the only texture
    top, left = detail_crop(hr, 96)
    assert top <= 250 and top + 96 >= 330 and left <= 40 and left + 96 >= 120
    grid = comparison_grid(hr, [('a', hr), ('b', hr)], crop_size=96)
    assert grid.shape == (HEADER + 96, 3 * 96, 3)  # overview + two cropped tiles
    assert np.array_equal(grid[HEADER:, 96:192], hr[top:top + 96, left:left + 96])
    with pytest.raises(ValueError, match="tile 'b' is"):
        comparison_grid(hr, [('b', hr[:10])])

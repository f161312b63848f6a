"""scripts/benchmark.py on tiny models: the table, the per-image numbers, the grids."""
import csv
import re

import cv2
import numpy as np
import pytest
import yaml
from basicsr.archs import build_network
from basicsr.metrics import calculate_niqe, calculate_psnr, calculate_ssim
from basicsr.utils.matlab_functions import imresize as basicsr_imresize
from torch.utils.data import DataLoader

from benchmarking.grid import HEADER, comparison_grid, detail_crop
from benchmarking.methods import build_basicsr_model
from srdiff_basicsr.data import CheckedPairedImageDataset
from srdiff_basicsr.errors import DatasetError
from tests.conftest import (TINY_UNET, dataset_opt, load_script, photo_crops, save_basicsr_weights, srdiff_options,
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
    assert ('- protocol: psnr, ssim, lpips, stlpips: RGB, no border crop; psnr_y, ssim_y, niqe: Y channel, border '
            'crop 4; the other metrics on RGB, whole image') in report
    assert ('| Method | PSNR (dB) ↑ | SSIM ↑ | PSNR-Y (dB) ↑ | SSIM-Y ↑ | LPIPS ↓ | ST-LPIPS ↓ | LR-PSNR (dB) ↑ | sigma '
            '| s / image |') in report
    # 32-px images: NIQE left out of this set, in one line saying why
    assert '- niqe left out: NIQE needs at least 2 blocks of 96x96 px after its 4-px border crop, the 32x32 image' in report
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
        assert float(row['psnr_y']) == pytest.approx(calculate_psnr(bicubic, hr, 4, test_y_channel=True), abs=0.02)
        assert float(row['ssim_y']) == pytest.approx(calculate_ssim(bicubic, hr, 4, test_y_channel=True), abs=1e-3)
        assert float(row['psnr_y']) != pytest.approx(float(row['psnr']), abs=0.05)  # another protocol, other numbers
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


def fake_pyiqa(monkeypatch, torch_home, weights=True):
    """pyiqa as far as we use it: create_metric(name, device) -> a network of RGB [0, 1] NCHW batches; MUSIQ here
    is 100 x the mean red, CLIPIQA the mean blue, so a swapped channel order shows."""
    import sys
    import types

    import torch
    from srdiff_basicsr.metrics import pyiqa_metrics
    module = types.ModuleType('pyiqa')
    channel = {'musiq': (0, 100.), 'clipiqa': (2, 1.)}
    module.create_metric = lambda name, device: (lambda x: x[:, channel[name][0]].mean() * channel[name][1])
    monkeypatch.setitem(sys.modules, 'pyiqa', module)
    monkeypatch.setattr(pyiqa_metrics, '_networks', {})
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(torch_home))
    for files in pyiqa_metrics.PYIQA_WEIGHTS.values():
        for file in files if weights else ():
            (torch_home / file).parent.mkdir(parents=True, exist_ok=True)
            (torch_home / file).write_bytes(b'')


def test_a_set_without_hr_is_scored_by_no_reference_metrics_and_lr_consistency(setup, monkeypatch, tmp_path):
    root, lr_dir, hr_dir, srdiff_opt, _ = setup
    lq_dir = tmp_path / 'real_world'
    lq_dir.mkdir()
    for k, crop in enumerate(photo_crops(2, 52, seed=3)):  # x4: 208 px, 2 x 2 NIQE blocks after the 4-px crop
        cv2.imwrite(str(lq_dir / f'photo{k}.png'), crop[..., ::-1])
    opt = yaml.safe_load(open(srdiff_opt))
    opt['datasets']['test_2'] = dict(name='no_hr', type='SingleImageDataset', dataroot_lq=str(lq_dir),
                                     io_backend=dict(type='disk'))
    fake_pyiqa(monkeypatch, tmp_path / 'torch_home')
    out = tmp_path / 'report'
    load_script('benchmark.py').main(['-opt', write_options(tmp_path / 'opt.yml', opt), '--num-samples', '2',
                                      '--lpips', 'off', '--device', 'cpu', '--out', str(out)])
    report = (out / 'report.md').read_text()
    section = report[report.index('## no_hr (2 images)'):]
    assert '- no HR images: scored by niqe, musiq, clipiqa, lr_psnr and sigma only' in section
    assert '| Method | NIQE ↓ | MUSIQ ↑ | CLIPIQA ↑ | LR-PSNR (dB) ↑ | sigma | s / image |' in section
    assert '| Method | PSNR (dB) ↑ | SSIM ↑ | PSNR-Y (dB) ↑ | SSIM-Y ↑ | ST-LPIPS ↓ | MUSIQ ↑ | CLIPIQA ↑ |' in report

    rows = read_rows(out / 'metrics_no_hr.csv')
    assert set(rows[0]) == {'image', 'method', 'niqe', 'musiq', 'clipiqa', 'lr_psnr', 'sigma'} and len(rows) == 2 * 3
    for name in ('photo0', 'photo1'):
        lr = cv2.imread(str(lq_dir / f'{name}.png'))
        bicubic = np.clip(basicsr_imresize(lr / 255, 4) * 255, 0, 255).round().astype(np.uint8)
        row = next(r for r in rows if r['image'] == name and r['method'] == 'Bicubic')
        assert float(row['niqe']) == pytest.approx(calculate_niqe(bicubic, 4), rel=1e-3)
        assert float(row['musiq']) == pytest.approx(bicubic[..., 2].mean() / 255 * 100, rel=1e-3)  # red is BGR's 2
        assert float(row['clipiqa']) == pytest.approx(bicubic[..., 0].mean() / 255, rel=1e-3)
        assert float(row['lr_psnr']) > 40  # bicubic down after bicubic up: close to its input
        # one grid per image: overview, LR, bicubic, RRDB, 2 samples, no HR; the window is the bicubic image's
        grid = cv2.imread(str(out / 'grids' / 'no_hr' / f'{name}.png'))
        assert grid.shape == (HEADER + 192, 6 * 192, 3)
        top, left = detail_crop(bicubic, 192)
        assert np.abs(grid[HEADER:, 2 * 192:3 * 192].astype(int) - bicubic[top:top + 192, left:left + 192]).max() <= 1

    with pytest.raises(Exception, match="--lr-psnr-from-hr: dataset 'no_hr' has no HR images"):
        load_script('benchmark.py').main(['-opt', str(tmp_path / 'opt.yml'), '--lr-psnr-from-hr', '--lpips', 'off',
                                          '--device', 'cpu', '--out', str(tmp_path / 'again')])


def test_pyiqa_metrics_are_left_out_in_one_line_each_when_missing(monkeypatch, tmp_path):
    import sys
    from benchmarking.scoring import benchmark_metrics
    monkeypatch.setitem(sys.modules, 'pyiqa', None)  # not installed
    metrics, notes = benchmark_metrics(4, lpips='off')
    assert 'musiq' not in metrics and 'clipiqa' not in metrics
    assert [n for n in notes if 'pyiqa' in n] == ['MUSIQ, CLIPIQA left out: pyiqa is not installed (pip install pyiqa)']
    fake_pyiqa(monkeypatch, tmp_path, weights=False)  # installed, nothing downloaded
    metrics, notes = benchmark_metrics(4, lpips='off')
    assert 'musiq' not in metrics and [n for n in notes if 'pyiqa' in n] == [
        f"MUSIQ left out: pyiqa's weights are not on disk ({tmp_path}/pyiqa/musiq_koniq_ckpt-e95806b9.pth); on a "
        "machine with internet, python -c \"import pyiqa; pyiqa.create_metric('musiq')\" downloads them",
        f"CLIPIQA left out: pyiqa's weights are not on disk ({tmp_path}/clip/RN50.pt); on a "
        "machine with internet, python -c \"import pyiqa; pyiqa.create_metric('clipiqa')\" downloads them"]
    fake_pyiqa(monkeypatch, tmp_path)
    metrics, notes = benchmark_metrics(4, lpips='off', device='cpu')
    assert metrics['musiq'] == {'type': 'calculate_musiq', 'device': 'cpu'} and not [n for n in notes if 'pyiqa' in n]


def test_a_test_run_stops_before_sampling_an_image_niqe_cannot_score(setup):
    root, lr_dir, hr_dir, srdiff_opt, _ = setup
    model, _ = build_basicsr_model(srdiff_opt, 'cpu')
    model.opt['val']['metrics'] = {'niqe': {'type': 'calculate_niqe', 'crop_border': 4}}
    sampled = []
    model.pipeline = lambda lq, **kwargs: sampled.append(lq)
    loader = DataLoader(CheckedPairedImageDataset(dataset_opt('tiny_test', lr_dir, hr_dir, 'test')), batch_size=1)
    with pytest.raises(DatasetError, match=r'val.metrics.niqe cannot score tiny_test/000: NIQE needs at least 2 '
                                           r'blocks of 96x96 px after its 4-px border crop, the 32x32 image has 0'):
        model.validation(loader, current_iter='x', tb_logger=None, save_img=False)
    assert not sampled


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

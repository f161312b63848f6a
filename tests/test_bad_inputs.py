"""A catalogue of user mistakes, each through the entry point a user runs: exit status 2, one `error:` line
naming the option, never a traceback. (In-process, on one shared tiny dataset, to stay fast.)"""
import copy
import os
import sys

import pytest
import torch

from srdiff_basicsr import test as test_entry
from srdiff_basicsr import train as train_entry
from tests.conftest import make_pairs, srdiff_options, tiny_data_and_encoder, write_options


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('bad_inputs')
    return (root, *tiny_data_and_encoder(root, hr_size=16))


def run(entry, opt, root, monkeypatch, capsys):
    path = write_options(root / f"{opt['name']}.yml", opt)
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, 'argv', ['srdiff', '-opt', path])
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    return exit_info.value.code, capsys.readouterr().err


def changed(opt, dotted, value):
    opt = copy.deepcopy(opt)
    *parents, leaf = dotted.split('.')
    node = opt
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return opt


TRAINING_MISTAKES = [
    ('diffusion.timesteps', 'abc', "diffusion.timesteps: must be an integer >= 1, got 'abc'"),
    ('diffusion.timesteps', -5, 'diffusion.timesteps: must be an integer >= 1, got -5'),
    ('diffusion.timesteps', 10.5, 'diffusion.timesteps: must be an integer >= 1, got 10.5'),
    ('diffusion.cosine_s', -1, 'diffusion.cosine_s: must be a number > 0, got -1'),
    ('diffusion.res_rescale', 0, 'diffusion.res_rescale: must be a number > 0, got 0'),
    ('diffusion.schedule', 'linear', "diffusion.schedule: must be one of ['cosine', 'scaled_linear', 'vp'], got 'linear'"),
    ('diffusion.loss', 'l2', 'write train.pixel_opt: {type: MSELoss, loss_weight: 1.0} instead'),
    ('network_g.dim', 0, 'network_g.dim: must be an integer >= 1, got 0'),
    ('network_g.dim_mults', [], 'network_g.dim_mults: must be a non-empty list of integers >= 1, got []'),
    ('network_g.use_attn', 'yes', "network_g.use_attn: must be true or false, got 'yes'"),
    ('network_g.window_attn_levels', [3], 'network_g: SRDiffUNet: window_attn_levels [3] not among the levels 0..1'),
    ('train.ema_decay', 2.0, 'train.ema_decay: must be a number from 0 (no EMA) to below 1, got 2.0'),
    ('train.optim_g.lr', '1e-4', "train.optim_g.lr: must be a number > 0 (YAML reads 1e-4 as a string"),
    ('val.num_samples', 0, 'val.num_samples: must be an integer >= 1, got 0'),
    ('val.protocol', 'ycbcr', "val.protocol: must be one of ['basicsr', 'paper'], got 'ycbcr'"),
    ('val.sampler', {'type': 'euler'}, "val.sampler.type: unknown sampler 'euler'"),
    ('train.precision', 'fp16', 'train.precision: fp16 needs a CUDA device'),
    ('val.sampler', {'type': 'ddim', 'eta': float('inf')}, 'val.sampler.eta: must be a number >= 0, got inf'),
    ('val.sampler', {'type': 'ode', 'rtol': float('inf')}, 'val.sampler.rtol: must be a number > 0, got inf'),
    ('network_encoder.num_block', 1, 'network_g (its encoder sizes those of network_encoder): SRDiffUNet: '
     'encoder_num_block must be at least 2, got 1'),
    ('model_type', 'SRDifModel', "model_type: no model named 'SRDifModel'; did you mean 'SRDiffModel'?"),
    ('train.optim_g.type', 'Adamm', "train.optim_g.type: no optimizer named 'Adamm'; did you mean 'Adam'?"),
    ('train.pixel_opt', {'type': 'L1Los'}, "train.pixel_opt.type: no loss named 'L1Los'; did you mean 'L1Loss'?"),
    ('val.tile', {'size': 16, 'overlap': 16}, 'val.tile.overlap: must be an integer from 0 to size - 1 (15), got 16'),
    ('scale', 2, 'is 16x16 and'),
    ('datasets.train.gt_size', 18, 'datasets.train.gt_size: must be an integer multiple of the scale 4'),
    ('datasets.train.gt_size', None, 'datasets.train.gt_size: must be an integer multiple of the scale 4'),
    ('datasets.train.gt_size', 64, 'datasets.train.gt_size: 64 is larger than'),
    ('train.objective', {'type': 'score_matching'}, "train.objective: must be {type: <one of ['distillation', "
     "'image_quality', 'noise']>"),
    ('train.objective', {'type': 'noise', 'steps': 2}, "train.objective: noise has no options, got ['steps']"),
    ('train.objective', {'type': 'image_quality', 'rtol': 0}, 'train.objective.rtol: must be a number > 0, got 0'),
    ('train.image_quality', {}, 'train.image_quality: now train.objective: {type: image_quality'),
    ('distill', {'teacher': 'x', 'steps': 2}, 'distill: now train.objective: {type: distillation, teacher'),
    ('model_type', 'SRDiffDistillModel', 'model_type: SRDiffDistillModel is gone; distill: now train.objective'),
]


@pytest.mark.parametrize('case', range(len(TRAINING_MISTAKES)), ids=[f'{o}={v!r}' for o, v, _ in TRAINING_MISTAKES])
def test_training_option_mistakes_end_in_one_line(tiny, monkeypatch, capsys, case):
    root, lr_dir, hr_dir, encoder = tiny
    option, value, message = TRAINING_MISTAKES[case]
    opt = changed(srdiff_options(f'bad_{case}', lr_dir, hr_dir, encoder, total_iter=1), option, value)
    code, err = run(train_entry, opt, root, monkeypatch, capsys)
    assert code == 2 and 'Traceback' not in err
    assert 'error: ' in err and message in err, err
    assert not (root / 'experiments' / f'bad_{case}').exists()  # checked before BasicSR made anything


def test_a_test_without_trained_weights_refuses(tiny, monkeypatch, capsys):
    root, lr_dir, hr_dir, encoder = tiny
    opt = srdiff_options('bad_test', lr_dir, hr_dir, encoder, is_train=False)
    code, err = run(test_entry, opt, root, monkeypatch, capsys)
    assert code == 2 and 'error: path.pretrain_network_g is not set: a test would sample with an untrained' in err
    assert not (root / 'results' / 'bad_test' / 'metrics_tiny_test.csv').exists()


RUN_MISTAKES = [
    ('datasets.train.batch_size_per_gpu', 0, 'datasets.train.batch_size_per_gpu: must be an integer >= 1, got 0'),
    ('val.val_freq', 0, 'val.val_freq: must be a number > 0, got 0'),
    ('logger.save_checkpoint_freq', 0, 'logger.save_checkpoint_freq: must be a number > 0, got 0'),
    ('num_gpu', 1, 'num_gpu: 1, but this machine has no CUDA GPU'),
    ('diffusion.timesteps', 0, 'diffusion.timesteps: must be an integer >= 1, got 0'),
]


@pytest.mark.parametrize('case', range(len(RUN_MISTAKES)), ids=[f'{o}={v!r}' for o, v, _ in RUN_MISTAKES])
def test_run_options_are_checked_before_any_folder_or_dataset_is_made(tiny, monkeypatch, capsys, case):
    if RUN_MISTAKES[case][0] == 'num_gpu' and torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    root, lr_dir, hr_dir, encoder = tiny
    option, value, message = RUN_MISTAKES[case]
    opt = changed(srdiff_options(f'early_{case}', lr_dir, hr_dir, encoder, total_iter=1), option, value)
    code, err = run(train_entry, opt, root, monkeypatch, capsys)
    assert code == 2 and 'Traceback' not in err and message in err, err
    assert not (root / 'experiments' / f'early_{case}').exists()  # nothing was made


@pytest.fixture(scope='module')
def infer_inputs(tmp_path_factory):
    """An experiment and a folder with a good image, a 1-pixel-high one and truncated PNG and JPEG files."""
    import cv2
    import numpy as np

    from tests.conftest import make_experiment
    root = tmp_path_factory.mktemp('infer_inputs')
    experiment = make_experiment(root / 'exp', timesteps=3)
    folder = root / 'in'
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / 'good.png'), rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / 'one_row.png'), rng.integers(0, 255, (1, 9, 3), dtype=np.uint8))
    photo = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for ext in ('png', 'jpg'):
        cv2.imwrite(str(root / f'whole.{ext}'), photo)
        data = (root / f'whole.{ext}').read_bytes()
        (folder / f'truncated.{ext}').write_bytes(data[:len(data) // 2])
    return root, experiment, folder


def test_infer_reports_broken_images_and_goes_on_with_the_folder(infer_inputs, capsys):
    from srdiff_basicsr.infer import main
    root, experiment, folder = infer_inputs
    out = root / 'out'
    code = main([str(folder), '-o', str(out), '--model', str(experiment)])
    err = capsys.readouterr().err
    assert code == 1 and 'Traceback' not in err
    assert sorted(p.name for p in out.iterdir()) == ['good.png', 'one_row.png']  # a 1-pixel-high image works too
    for name in ('truncated.png', 'truncated.jpg'):
        assert f'{folder / name}: damaged or truncated image' in err
    assert '2 image(s) super-resolved' in err and '2 failed' in err


@pytest.mark.parametrize('extra,message', [
    (['--device', 'tpu'], '--device tpu: not a device name (cpu, cuda or cuda:N)'),
    (['--device', 'cuda:7'], '--device cuda:7: this machine has'),
    (['--model', 'no_such_model'], '--model: no such file or folder: no_such_model'),
    (['--steps', '0', '--sampler', 'ddim'], 'command line.sampler.steps: must be an integer from 1 to 3, got 0'),
    (['--fidelity', '0.5'], '--fidelity: diffusion.space pixel_residual has no option fidelity (its options: clip_x0, '
                            'lr_up, res_rescale)'),
    (['--vae-tile', '32'], '--vae-tile: diffusion.space pixel_residual has no option vae_tile'),
])
def test_infer_command_line_mistakes_end_in_one_line_and_leave_no_output_folder(infer_inputs, capsys, extra,
                                                                                message):
    from srdiff_basicsr.infer import main
    root, experiment, folder = infer_inputs
    out = root / f'out_{abs(hash(tuple(extra)))}'
    code = main([str(folder), '-o', str(out), '--model', str(experiment), *extra])
    err = capsys.readouterr().err
    assert code == 2 and f'error: {message}' in err and 'Traceback' not in err, err
    assert not out.exists()


def test_infer_output_that_is_a_file_is_named_as_such(infer_inputs, capsys):
    from srdiff_basicsr.infer import main
    root, experiment, folder = infer_inputs
    (root / 'a_file').write_text('x')
    assert main([str(folder), '-o', str(root / 'a_file'), '--model', str(experiment)]) == 2
    assert 'a_file: exists and is a file; -o must name a folder' in capsys.readouterr().err


def test_an_image_that_breaks_in_a_dataloader_worker_ends_in_one_line(tmp_path):
    from torch.utils.data import DataLoader

    from srdiff_basicsr.host.cli import one_line
    from srdiff_basicsr.data import CheckedPairedImageDataset
    from srdiff_basicsr.errors import DatasetError
    from tests.conftest import dataset_opt
    lr_dir, hr_dir = make_pairs(tmp_path, count=1)
    dataset = CheckedPairedImageDataset(dataset_opt('pairs', lr_dir, hr_dir, 'val'))
    (tmp_path / 'HR' / '000.png').write_bytes(b'broken after the start-up check')
    with pytest.raises(DatasetError) as error:
        next(iter(DataLoader(dataset, num_workers=1)))
    assert 'Original Traceback' in str(error.value)  # what torch makes of a worker's error
    line = one_line(error.value)
    assert '\n' not in line and line.startswith('cannot load the image pair') and '000.png' in line


def test_a_typo_in_any_models_network_options_and_an_unknown_metric_are_named(tiny, monkeypatch, capsys):
    from tests.conftest import encoder_train_options
    root, lr_dir, hr_dir, encoder = tiny
    opt = encoder_train_options('typo_encoder', lr_dir, hr_dir)  # a stock SRModel run
    opt['network_g']['num_feats'] = 8
    code, err = run(train_entry, opt, root, monkeypatch, capsys)
    assert code == 2 and "error: network_g: unknown option(s) ['num_feats'] for SRDiffRRDBNet" in err
    opt = srdiff_options('bad_metric', lr_dir, hr_dir, encoder, total_iter=1)
    opt['val']['metrics']['psnr']['type'] = 'calculate_psnrr'
    code, err = run(train_entry, opt, root, monkeypatch, capsys)
    assert code == 2 and "error: val.metrics.psnr.type: no metric named 'calculate_psnrr'" in err


def test_empty_image_folders_are_named(tiny, monkeypatch, capsys, tmp_path):
    root, lr_dir, hr_dir, encoder = tiny
    (tmp_path / 'HR').mkdir()
    (tmp_path / 'LR').mkdir()
    opt = srdiff_options('empty_data', str(tmp_path / 'LR'), str(tmp_path / 'HR'), encoder, total_iter=1)
    code, err = run(train_entry, opt, root, monkeypatch, capsys)
    assert code == 2 and f"error: dataset 'train': no images in {tmp_path / 'HR'}" in err and 'Traceback' not in err


def test_converter_mistakes_end_in_one_line(tmp_path):
    import subprocess

    from tests.conftest import REPO
    no_encoder = tmp_path / 'no_encoder.ckpt'
    torch.save({'state_dict': {'model': {'denoise_fn.cond_proj.weight': torch.zeros(1)}}}, no_encoder)
    (tmp_path / 'a_file').write_text('x')
    for args, message in (([str(no_encoder), '--out', str(tmp_path / 'o')], 'has no rrdb.* (encoder) weights'),
                          ([str(no_encoder), '--out', str(tmp_path / 'a_file')], 'is a file; it must name a folder')):
        result = subprocess.run([sys.executable, 'scripts/convert_official_checkpoint.py', *args], cwd=REPO,
                                capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr and 'Traceback' not in result.stderr


def test_command_line_mistakes_of_the_train_entry_end_in_one_line(tiny, monkeypatch, capsys):
    root, lr_dir, hr_dir, encoder = tiny
    path = write_options(root / 'cli.yml', srdiff_options('cli', lr_dir, hr_dir, encoder, total_iter=1))
    (root / 'broken.yml').write_text('name: [unclosed\n')
    monkeypatch.chdir(root)
    for argv, message in ((['-opt', path, '--force_yml', 'train:total_iter'],
                           '--force_yml train:total_iter: expected key:subkey=value'),
                          (['-opt', str(root / 'broken.yml')], '-opt: not a valid YAML options file')):
        monkeypatch.setattr(sys, 'argv', ['srdiff', *argv])
        with pytest.raises(SystemExit) as exit_info:
            train_entry.main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f'error: {message}' in err and 'Traceback' not in err, err


def test_stock_basicsr_entries_check_options_and_end_errors_in_one_line(tiny):
    from tests.conftest import run_cli
    root, lr_dir, hr_dir, encoder = tiny
    bad_option = changed(srdiff_options('stock_bad', lr_dir, hr_dir, encoder, total_iter=1), 'diffusion.timesteps', 0)
    untrained = srdiff_options('stock_untrained', lr_dir, hr_dir, encoder, is_train=False)
    diverging = changed(srdiff_options('stock_diverging', lr_dir, hr_dir, encoder, total_iter=4), 'train.optim_g.lr',
                        1e10)
    for entry, opt, status, message in (
            ('basicsr.train', bad_option, 2, 'diffusion.timesteps: must be an integer >= 1, got 0'),
            ('basicsr.test', untrained, 2, 'path.pretrain_network_g is not set'),
            ('basicsr.train', diverging, 1, 'iteration 2: the noise loss is not finite (the run diverged)')):
        result = run_cli(['-m', entry, '-opt', write_options(root / f"{opt['name']}.yml", opt)], cwd=root, check=False)
        assert result.returncode == status and 'Traceback' not in result.stderr, result.stderr[-2000:]
        assert result.stderr.splitlines()[-1].startswith(f'error: {message}'), result.stderr[-2000:]
    assert not (root / 'experiments' / 'stock_bad').exists() and not (root / 'results' / 'stock_untrained').exists()


def test_options_are_data_and_names_stay_inside_experiments(tiny, monkeypatch, capsys):
    """An options file or --force_yml value that would run code is refused (no command runs), through our entry
    and stock basicsr.train through the hook; a name that leaves experiments/ is refused before any folder."""
    from tests.conftest import run_cli
    root, lr_dir, hr_dir, encoder = tiny
    marker = root / 'ran'
    (root / 'evil.yml').write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    result = run_cli(['-m', 'basicsr.train', '-opt', str(root / 'evil.yml')], cwd=root, check=False)  # the hook's
    assert result.returncode == 2 and "could not determine a constructor for the tag" in result.stderr
    assert not marker.exists()
    good = write_options(root / 'good.yml', srdiff_options('good', lr_dir, hr_dir, encoder, total_iter=1))
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, 'argv', ['srdiff', '-opt', str(root / 'evil.yml')])
    with pytest.raises(SystemExit) as exit_info:
        train_entry.main()
    assert exit_info.value.code == 2 and 'could not determine a constructor' in capsys.readouterr().err
    assert not marker.exists()
    for argv, message in (
            (['--force_yml', f'train:total_iter=[__import__("os").system("touch {marker}")]'],
             "train.total_iter: must be a number >= 1, got ['__import__"),
            (['--force_yml', 'train"]=1;import os;os.system("x");#:a=1'], 'the keys must be option names'),
            (['--force_yml', 'name=../victim'], "name: must be a plain folder name"),
            (['--force_yml', f'name={root}/abs'], "name: must be a plain folder name")):
        monkeypatch.setattr(sys, 'argv', ['srdiff', '-opt', good, *argv])
        with pytest.raises(SystemExit) as exit_info:
            train_entry.main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and 'error: ' in err and message in err and 'Traceback' not in err, err
    assert not marker.exists() and not (root / 'victim').exists() and not (root / 'abs').exists()
    monkeypatch.setattr(sys, 'argv', ['srdiff', '-opt', str(root)])
    with pytest.raises(SystemExit):
        train_entry.main()
    assert f'error: -opt {root}: is a folder; give the options file (.yml)' in capsys.readouterr().err


def test_a_dataset_without_lr_images_for_a_model_that_makes_none_is_one_line(tiny, monkeypatch, capsys):
    root, lr_dir, hr_dir, encoder = tiny
    opt = srdiff_options('realesrgan', lr_dir, hr_dir, encoder, total_iter=1)
    opt['datasets']['train'] = dict(name='df2k', type='RealESRGANDataset', dataroot_gt=hr_dir, meta_info=None,
                                    io_backend={'type': 'disk'}, batch_size_per_gpu=1)
    code, err = run(train_entry, opt, root, monkeypatch, capsys)
    assert code == 2 and 'Traceback' not in err
    assert ("error: datasets.train.type: RealESRGANDataset gives HR crops and blur kernels but no LR ('lq'); add "
            '`degradation: {type: realesrgan}` to the options') in err
    assert not (root / 'experiments' / 'realesrgan').exists()


def test_a_run_reaches_total_iter_when_the_last_batch_of_an_epoch_is_dropped(tiny, monkeypatch, capsys):
    """3 images in batches of 2: BasicSR counted 2 iterations an epoch where its loader gives 1."""
    root, lr_dir, hr_dir, encoder = tiny
    opt = srdiff_options('full_count', lr_dir, hr_dir, encoder, total_iter=5)
    opt['datasets']['train'].update(batch_size_per_gpu=2, dataset_enlarge_ratio=1)
    make_pairs(root / 'three', count=3, hr_size=16)
    opt['datasets']['train'].update(dataroot_gt=str(root / 'three' / 'HR'), dataroot_lq=str(root / 'three' / 'LR'))
    opt['logger'].update(save_checkpoint_freq=5, print_freq=1)
    opt.pop('val', None)
    path = write_options(root / 'full_count.yml', opt)
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, 'argv', ['srdiff', '-opt', path])
    train_entry.main()
    assert (root / 'experiments' / 'full_count' / 'models' / 'net_g_5.pth').is_file()


def test_a_checkpoint_that_cannot_be_written_stops_the_run(tmp_path, monkeypatch):
    from srdiff_basicsr.errors import CheckpointError
    from tests.test_model import make_model
    torch.manual_seed(0)
    from basicsr.archs import build_network

    from tests.conftest import TINY_ENCODER, save_basicsr_weights
    encoder = save_basicsr_weights(build_network(dict(TINY_ENCODER, scale=4)), tmp_path / 'encoder.pth')
    model = make_model(tmp_path, encoder)

    def full_disk(obj, f, *args, **kwargs):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(CheckpointError, match=r'cannot write the checkpoint .*net_\w+_7\.pth \(\[Errno 28\] No space '
                                              r'left on device\); training stopped'):
        model.save(0, 7)


def test_a_second_run_of_a_running_experiment_is_refused(tiny, monkeypatch, capsys):
    import subprocess
    root, lr_dir, hr_dir, encoder = tiny
    (root / 'experiments' / 'busy').mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        (root / 'experiments' / 'busy' / '.running').write_text(str(sleeper.pid))
        code, err = run(train_entry, srdiff_options('busy', lr_dir, hr_dir, encoder, total_iter=1), root,
                        monkeypatch, capsys)
        assert code == 2 and f'belongs to a training that is running (process {sleeper.pid})' in err
        assert sorted(p.name for p in (root / 'experiments').iterdir() if p.name.startswith('busy')) == ['busy']
    finally:
        sleeper.kill()
        sleeper.wait()
    # its process is gone: the folder is free (archived by BasicSR, as any old run's), and the run trains
    path = write_options(root / 'busy.yml', srdiff_options('busy', lr_dir, hr_dir, encoder, total_iter=1))
    monkeypatch.setattr(sys, 'argv', ['srdiff', '-opt', path])
    train_entry.main()
    assert (root / 'experiments' / 'busy' / 'models' / 'net_g_latest.pth').is_file()
    assert (root / 'experiments' / 'busy' / '.running').read_text() == str(os.getpid())  # its own, until it exits


def test_auto_resume_with_only_unreadable_states_stops_instead_of_starting_over(tmp_path):
    from srdiff_basicsr.host import resume
    from srdiff_basicsr.errors import OptionsError
    (tmp_path / 'training_states').mkdir()
    (tmp_path / 'training_states' / '8.state').write_bytes(b'cut short')
    opt = {'name': 'x', 'auto_resume': True, 'num_gpu': 0,
           'path': {'training_states': str(tmp_path / 'training_states'), 'models': str(tmp_path / 'models')}}
    with pytest.raises(OptionsError, match=r'--auto_resume: no training state loads \(.*8\.state \(\w+\) unreadable\)'):
        resume.load_resume_state(opt)


def test_the_start_up_pair_check_reads_image_names_as_the_dataset_does(tmp_path):
    """A hidden file (a thumbnail, macOS's ._ copies) is no image to the dataset, so not the first pair either; a
    .ppm is one. Neither stops a run whose real pairs are right."""
    import cv2
    import numpy as np

    from srdiff_basicsr.errors import OptionsError
    from srdiff_basicsr.models.run_checks import check_first_pair
    lr_dir, hr_dir = make_pairs(tmp_path, count=1, hr_size=32)
    for folder in (lr_dir, hr_dir):
        cv2.imwrite(os.path.join(folder, '._000.png'), np.zeros((16, 16, 3), np.uint8))  # not x4 of each other
    opt = {'type': 'CheckedPairedImageDataset', 'dataroot_gt': hr_dir, 'dataroot_lq': lr_dir, 'gt_size': 16}
    check_first_pair('train', opt, 4)  # 000.png: 32x32 and 8x8
    for folder, side in ((lr_dir, 8), (hr_dir, 16)):  # a first .ppm pair that is not x4 is found and named
        cv2.imwrite(os.path.join(folder, '0.ppm'), np.zeros((side, side, 3), np.uint8))
    with pytest.raises(OptionsError, match=r'0\.ppm is 16x16 and .*0\.ppm is 8x8: not scale 4'):
        check_first_pair('train', opt, 4)

"""End to end through BasicSR's own loops, as a user runs them (subprocesses, tiny networks)."""
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, encoder_train_options, make_pairs, run_cli, srdiff_options, write_options


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """A project folder with tiny data and a pretrained tiny encoder (stock SRModel + L1)."""
    root = tmp_path_factory.mktemp('project')
    lr_dir, hr_dir = make_pairs(root / 'data', count=4, hr_size=32)
    opt = write_options(root / 'encoder.yml', encoder_train_options('tiny_encoder', lr_dir, hr_dir))
    run_cli(['-m', 'srdiff_basicsr.train', '-opt', opt], cwd=root)
    return root, lr_dir, hr_dir


def encoder_weights(root):
    return str(root / 'experiments' / 'tiny_encoder' / 'models' / 'net_g_latest.pth')


def test_encoder_pretraining_writes_basicsr_checkpoints_under_cwd(workdir):
    root, _, _ = workdir
    models = root / 'experiments' / 'tiny_encoder' / 'models'
    assert sorted(p.name for p in models.iterdir()) == ['net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth']
    assert set(torch.load(models / 'net_g_latest.pth', weights_only=True)) == {'params'}


def test_train_then_test_srdiff_from_the_experiment_folder_alone(workdir):
    root, lr_dir, hr_dir = workdir
    opt = srdiff_options('tiny_srdiff', lr_dir, hr_dir, encoder_weights(root), total_iter=4)
    run_cli(['-m', 'srdiff_basicsr.train', '-opt', write_options(root / 'srdiff.yml', opt)], cwd=root)
    models = root / 'experiments' / 'tiny_srdiff' / 'models'
    assert {'net_g_latest.pth', 'net_encoder_latest.pth', 'net_g_4.pth', 'net_encoder_4.pth'} <= {
        p.name for p in models.iterdir()}

    test_opt = srdiff_options('tiny_srdiff_test', lr_dir, hr_dir, str(models / 'net_encoder_latest.pth'),
                              is_train=False)
    test_opt['path']['pretrain_network_g'] = str(models / 'net_g_latest.pth')
    result = run_cli(['-m', 'srdiff_basicsr.test', '-opt', write_options(root / 'test.yml', test_opt)], cwd=root)
    images = sorted((root / 'results' / 'tiny_srdiff_test' / 'visualization' / 'tiny_test').iterdir())
    assert [p.name for p in images] == [f'{i:03d}_tiny_srdiff_test.png' for i in range(4)]
    log = next((root / 'results' / 'tiny_srdiff_test').glob('test_*.log')).read_text()
    assert '# psnr:' in log, result.stdout[-2000:]


def test_stock_basicsr_entry_finds_srdiff_without_an_import(workdir):
    root, lr_dir, hr_dir = workdir
    opt = srdiff_options('tiny_stock_entry', lr_dir, hr_dir, encoder_weights(root), total_iter=2)
    del opt['datasets']['val'], opt['val']
    opt_file = write_options(root / 'stock.yml', opt)
    run_cli(['-m', 'basicsr.train', '-opt', opt_file], cwd=root)
    # and the outputs land under the current directory, not in site-packages
    assert (root / 'experiments' / 'tiny_stock_entry' / 'models' / 'net_g_latest.pth').is_file()
    # the stock script's own copy of load_resume_state is replaced too: it resumes without CUDA
    result = run_cli(['-m', 'basicsr.train', '-opt', opt_file, '--auto_resume', '--force_yml', 'train:total_iter=4'],
                     cwd=root)
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', result.stdout + result.stderr)
    assert (root / 'experiments' / 'tiny_stock_entry' / 'training_states' / '4.state').is_file()


def test_stock_train_script_of_a_basicsr_checkout_finds_srdiff(workdir, tmp_path):
    import basicsr
    root, lr_dir, hr_dir = workdir
    checkout = tmp_path / 'BasicSR'
    (checkout / 'basicsr').mkdir(parents=True)
    shutil.copy(Path(basicsr.__file__).parent / 'train.py', checkout / 'basicsr' / 'train.py')  # the stock script
    opt = srdiff_options('tiny_checkout_entry', lr_dir, hr_dir, encoder_weights(root), total_iter=2)
    del opt['datasets']['val'], opt['val']
    run_cli(['basicsr/train.py', '-opt', write_options(tmp_path / 'checkout.yml', opt)], cwd=checkout)
    assert (checkout / 'experiments' / 'tiny_checkout_entry' / 'models' / 'net_encoder_latest.pth').is_file()


def latest_state(states_dir):
    states = [int(p.stem) for p in states_dir.glob('*.state')] if states_dir.is_dir() else []
    return max(states, default=None)


def test_killed_run_resumes_at_its_last_checkpoint_on_cpu(workdir):
    root, lr_dir, hr_dir = workdir
    opt = srdiff_options('tiny_resume', lr_dir, hr_dir, encoder_weights(root), total_iter=100000)
    del opt['datasets']['val'], opt['val']
    opt_file = write_options(root / 'resume.yml', opt)
    states_dir = root / 'experiments' / 'tiny_resume' / 'training_states'
    proc = subprocess.Popen([sys.executable, '-m', 'srdiff_basicsr.train', '-opt', opt_file], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while (latest_state(states_dir) or 0) < 4 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
    finally:  # never leave a 100,000-iteration run behind, whatever happens above
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = latest_state(states_dir)
    assert saved is not None and saved >= 4

    result = run_cli(['-m', 'srdiff_basicsr.train', '-opt', opt_file, '--auto_resume', '--force_yml',
                      f'train:total_iter={saved + 2}'], cwd=root)
    log = result.stdout + result.stderr
    assert re.search(rf'Resuming training from epoch: \d+, iter: {saved}\.', log)
    assert f'Set pretrain_network_encoder to {root}/experiments/tiny_resume/models/net_encoder_{saved}.pth' in log
    assert latest_state(states_dir) == saved + 2
    assert not list(states_dir.parent.rglob('*.tmp'))


def test_rerun_without_resume_archives_the_previous_experiment(workdir):
    root, lr_dir, hr_dir = workdir
    opt = srdiff_options('tiny_rerun', lr_dir, hr_dir, encoder_weights(root), total_iter=2)
    del opt['datasets']['val'], opt['val']
    opt_file = write_options(root / 'rerun.yml', opt)
    for _ in range(2):
        run_cli(['-m', 'srdiff_basicsr.train', '-opt', opt_file], cwd=root)
    archived = list((root / 'experiments').glob('tiny_rerun_archived_*'))
    assert len(archived) == 1 and (archived[0] / 'models' / 'net_g_latest.pth').is_file()


def test_user_errors_end_in_one_clear_line(workdir, tmp_path):
    root, lr_dir, hr_dir = workdir
    opt = srdiff_options('tiny_bad', lr_dir, str(tmp_path / 'no_such_hr'), encoder_weights(root))
    result = run_cli(['-m', 'srdiff_basicsr.train', '-opt', write_options(tmp_path / 'bad.yml', opt)], cwd=tmp_path,
                     check=False)
    assert result.returncode == 2
    assert f"error: dataset 'train': dataroot_gt is not a folder: {tmp_path}/no_such_hr" in result.stderr
    assert 'Traceback' not in result.stderr


def test_a_diverging_training_stops_in_one_line_and_leaves_no_broken_checkpoint(workdir, tmp_path):
    root, lr_dir, hr_dir = workdir
    opt = srdiff_options('tiny_diverging', lr_dir, hr_dir, encoder_weights(root), total_iter=6)
    opt['train']['optim_g']['lr'] = 1e10
    result = run_cli(['-m', 'srdiff_basicsr.train', '-opt', write_options(tmp_path / 'diverging.yml', opt)],
                     cwd=tmp_path, check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert re.search(r'error: iteration \d+: the noise (loss|gradient) is not finite', result.stderr)
    models = tmp_path / 'experiments' / 'tiny_diverging' / 'models'
    for path in models.glob('net_g_*.pth'):
        weights = torch.load(path, weights_only=True)['params']
        assert all(torch.isfinite(v).all() for v in weights.values()), path


def ecdp_options(name, lr_dir, hr_dir, encoder, total_iter):
    """A tiny ECDP: ECDPUNet, VP diffusion, hybrid heads, the encoder fine-tuned without an auxiliary loss."""
    opt = srdiff_options(name, lr_dir, hr_dir, encoder, total_iter=total_iter)
    del opt['datasets']['val'], opt['val']
    opt['network_g'] = dict(type='ECDPUNet', channels=[8, 16], num_blocks=1, time_dim=8, feature_blocks=[0, 1],
                            num_out_ch=6)
    opt['diffusion'] = dict(schedule='vp', timesteps=10, res_rescale=2.5, clip_x0=False, parametrization='hybrid')
    opt['train'].update(pixel_opt={'type': 'MSELoss', 'loss_weight': 1.0}, grad_clip={'value': 10.0}, warmup_iter=1,
                        ema_decay=0.9, optim_encoder={'type': 'Adam', 'lr': 1e-5}, encoder_losses={})
    return opt


def test_ecdp_trains_resumes_fine_tunes_and_tests_through_both_entries(workdir):
    root, lr_dir, hr_dir = workdir
    opt_file = write_options(root / 'ecdp.yml', ecdp_options('tiny_ecdp', lr_dir, hr_dir, encoder_weights(root), 2))
    log = run_cli(['-m', 'srdiff_basicsr.train', '-opt', opt_file], cwd=root).stderr
    assert re.search(r'l_noise_eps: [\d.e+-]+ l_noise_x0: [\d.e+-]+', log)
    result = run_cli(['-m', 'basicsr.train', '-opt', opt_file, '--auto_resume', '--force_yml', 'train:total_iter=4'],
                     cwd=root)
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', result.stdout + result.stderr)
    models = root / 'experiments' / 'tiny_ecdp' / 'models'
    assert set(torch.load(models / 'net_encoder_4.pth', weights_only=True)) == {'params', 'params_ema'}

    finetune = ecdp_options('tiny_ecdp_finetune', lr_dir, hr_dir, str(models / 'net_encoder_latest.pth'), 2)
    finetune['path'].update(pretrain_network_g=str(models / 'net_g_latest.pth'), param_key_g='params_ema')
    finetune['train']['objective'] = {'type': 'image_quality', 'loss': {'type': 'L1Loss', 'loss_weight': 1.0},
                                      'rtol': 0.1, 'atol': 0.1}
    log = run_cli(['-m', 'basicsr.train', '-opt', write_options(root / 'finetune.yml', finetune)], cwd=root).stderr
    assert re.search(r'l_image_quality: [\d.e+-]+', log) and 'l_noise' not in log

    tuned = root / 'experiments' / 'tiny_ecdp_finetune' / 'models'
    test_opt = srdiff_options('tiny_ecdp_test', lr_dir, hr_dir, str(tuned / 'net_encoder_latest.pth'), is_train=False)
    test_opt.update(network_g=finetune['network_g'], diffusion=finetune['diffusion'])
    test_opt['path'].update(pretrain_network_g=str(tuned / 'net_g_latest.pth'), param_key_g='params_ema')
    test_opt['val']['sampler'] = {'type': 'ode', 'rtol': 0.1, 'atol': 0.1}
    run_cli(['-m', 'srdiff_basicsr.test', '-opt', write_options(root / 'ecdp_test.yml', test_opt)], cwd=root)
    assert len(list((root / 'results' / 'tiny_ecdp_test' / 'visualization' / 'tiny_test').iterdir())) == 4
    assert '# psnr:' in next((root / 'results' / 'tiny_ecdp_test').glob('test_*.log')).read_text()


def test_distillation_trains_resumes_and_tests_through_basicsrs_loop(workdir):
    root, lr_dir, hr_dir = workdir
    teacher = srdiff_options('tiny_teacher', lr_dir, hr_dir, encoder_weights(root), total_iter=2, timesteps=8)
    del teacher['datasets']['val'], teacher['val']
    run_cli(['-m', 'srdiff_basicsr.train', '-opt', write_options(root / 'teacher.yml', teacher)], cwd=root)
    student = srdiff_options('tiny_student', lr_dir, hr_dir, None, total_iter=2, timesteps=8)
    del student['datasets']['val'], student['val']
    student['train']['objective'] = {'type': 'distillation', 'teacher': 'experiments/tiny_teacher', 'steps': 2}
    student['train']['pixel_opt'] = {'type': 'MSELoss', 'loss_weight': 1.0}
    opt_file = write_options(root / 'student.yml', student)
    log = run_cli(['-m', 'basicsr.train', '-opt', opt_file], cwd=root).stderr
    assert 'Distilling experiments/tiny_teacher (DDIM, 4 steps) into 2 steps' in log
    result = run_cli(['-m', 'srdiff_basicsr.train', '-opt', opt_file, '--auto_resume', '--force_yml',
                      'train:total_iter=4'], cwd=root)
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', result.stdout + result.stderr)

    models = root / 'experiments' / 'tiny_student' / 'models'
    test_opt = srdiff_options('tiny_student_test', lr_dir, hr_dir, str(models / 'net_encoder_latest.pth'),
                              is_train=False, timesteps=8)
    test_opt['path']['pretrain_network_g'] = str(models / 'net_g_latest.pth')
    test_opt['val']['sampler'] = {'type': 'ddim', 'steps': 2}
    run_cli(['-m', 'srdiff_basicsr.test', '-opt', write_options(root / 'student_test.yml', test_opt)], cwd=root)
    summary = (root / 'results' / 'tiny_student_test' / 'summary_tiny_test.md').read_text()
    assert 'DDIM, 2 steps' in summary

    student['train']['total_iter'] = 1  # the stage chain: 2 steps, then 1 from the 2-step student
    chain = write_options(root / 'chain.yml', student)
    out = run_cli([str(REPO / 'scripts' / 'distill.py'), '-opt', chain, '--steps', '2', '1'], cwd=root).stdout
    assert re.search(r'=== tiny_student_s2: 4-step teacher -> 2-step student, 1 iterations x batch 2: 4 teacher', out)
    log = next((root / 'experiments' / 'tiny_student_s1').glob('train_*.log')).read_text()
    assert 'Distilling experiments/tiny_student_s2 (DDIM, 2 steps) into 1 steps' in log
    again = run_cli([str(REPO / 'scripts' / 'distill.py'), '-opt', chain, '--steps', '2', '1'], cwd=root).stdout
    assert again.count('done before, skipped') == 2
    student['diffusion']['parametrization'] = 'v'  # other options under the same name: stop, touch nothing
    weights = (root / 'experiments' / 'tiny_student_s2' / 'models' / 'net_g_latest.pth').read_bytes()
    changed = run_cli([str(REPO / 'scripts' / 'distill.py'), '-opt', write_options(root / 'chain.yml', student),
                       '--steps', '2', '1'], cwd=root, check=False)
    assert changed.returncode != 0
    assert 'experiments/tiny_student_s2 exists but was not distilled with these options' in changed.stderr
    assert (root / 'experiments' / 'tiny_student_s2' / 'models' / 'net_g_latest.pth').read_bytes() == weights

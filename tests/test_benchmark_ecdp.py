"""scripts/benchmark_ecdp.py on tiny stand-ins of the demo experiments (no training): one row per model and sampler."""
import re
import sys

import pytest

from tests.conftest import load_script, make_experiment, make_pairs


def stand_ins(tmp_path, monkeypatch, models):
    """The script, with tiny untrained stand-ins of ``models`` (experiment names) and the demo encoder under
    tmp_path; returns the script module and the held-out folders."""
    script = load_script('benchmark_ecdp.py')
    monkeypatch.chdir(tmp_path)
    script.ODE.update(rtol=0.1, atol=0.1)  # fewer evaluations for an untrained network (the table's dict)
    (tmp_path / 'options').mkdir()
    make_experiment(tmp_path / 'experiments' / 'demo_rrdb_x4').joinpath('models', 'net_g_latest.pth').touch()
    for index, (_, options_file, name, _) in enumerate(script.MODELS):
        (tmp_path / options_file).write_text(f'train: {{total_iter: {3000 + index}}}\n')
        if name in models:
            make_experiment(tmp_path / 'experiments' / name, timesteps=20)
            (tmp_path / 'experiments' / name / f'train_{name}_20261124.log').write_text(
                f'[iter: 100, time (data): {0.2 + index:.3f} (0.001)] l_noise: 1\n')
    return script, make_pairs(tmp_path / 'data', count=1, hr_size=24)


def test_ecdp_comparison_reports_every_model_with_its_samplers_and_their_nfe(tmp_path, monkeypatch):
    script, (lr_dir, hr_dir) = stand_ins(tmp_path, monkeypatch, [
        'demo_srdiff_x4', 'demo_ecdp_eps_x4', 'demo_ecdp_x0_x4', 'demo_ecdp_x4', 'demo_finetune_ecdp_x4'])
    monkeypatch.setattr(sys, 'argv', ['benchmark_ecdp.py', '--lr-dir', lr_dir, '--hr-dir', hr_dir,
                                      '--num-samples', '2', '--device', 'cpu'])
    script.main()
    report = (tmp_path / 'results' / 'benchmark_ecdp' / 'report.md').read_text()
    rows = re.findall(r'^\| ((?:SRDiff|ECDP)[^|]*?) \| ([^|]+?) \| .* \| (\d+) \| [\d.]+ \| [\d.]+M \| ([\d,]+) \| '
                      r'([\d.]+) \|$', report, re.M)
    expected = [(label, sampler['type']) for label, _, _, samplers in script.MODELS for sampler in samplers]
    assert [(label, sampler.split(',')[0]) for label, sampler, *_ in rows] == [
        (label, {'ddpm': 'DDPM', 'ddim': 'DDIM', 'ode': 'probability-flow ODE'}[kind]) for label, kind in expected]
    nfe = {sampler.split(',')[0]: int(n) for _, sampler, n, *_ in rows}
    assert nfe['DDPM'] == 20 and nfe['DDIM'] == 20 and nfe['probability-flow ODE'] > 2  # the ODE's own count
    assert [it for *_, it, _ in rows][::2] == ['3,000', '3,001', '3,002', '3,003', '3,004']
    assert [float(s) for *_, s in rows][::2] == [0.2, 1.2, 2.2, 3.2, 4.2]


def test_models_runs_only_the_experiments_named(tmp_path, monkeypatch):
    script, (lr_dir, hr_dir) = stand_ins(tmp_path, monkeypatch, ['demo_ecdp_x4'])  # the others do not exist
    monkeypatch.setattr(sys, 'argv', ['benchmark_ecdp.py', '--lr-dir', lr_dir, '--hr-dir', hr_dir,
                                      '--num-samples', '1', '--device', 'cpu', '--models', 'demo_ecdp_x4'])
    script.main()
    report = (tmp_path / 'results' / 'benchmark_ecdp' / 'report.md').read_text()
    assert re.findall(r'^\| ((?:SRDiff|ECDP)[^|]*?) \| ', report, re.M) == ['ECDP hybrid', 'ECDP hybrid']
    assert not (tmp_path / 'experiments' / 'demo_ecdp_eps_x4').exists()  # not trained


def test_models_refuses_an_unknown_experiment(tmp_path, monkeypatch, capsys):
    script, (lr_dir, hr_dir) = stand_ins(tmp_path, monkeypatch, [])
    monkeypatch.setattr(sys, 'argv', ['benchmark_ecdp.py', '--models', 'demo_ecdp_x5'])
    with pytest.raises(SystemExit):
        script.main()
    assert "--models: invalid choice: 'demo_ecdp_x5'" in capsys.readouterr().err

"""scripts/benchmark_adjoint.py on a tiny ECDP: both back-propagations of the same solve, their gradients compared."""
import re

import yaml

from tests.conftest import REPO, TINY_ENCODER, run_cli


def test_adjoint_benchmark_reports_both_variants_of_one_solve_and_agreeing_gradients(tmp_path):
    options = {'scale': 4, 'network_encoder': dict(TINY_ENCODER),
               'network_g': dict(type='ECDPUNet', channels=[8, 16], num_blocks=1, time_dim=8, feature_blocks=[0, 1],
                                 num_out_ch=6),
               'diffusion': dict(schedule='vp', timesteps=10, res_rescale=2.5, clip_x0=False,
                                 parametrization='hybrid')}
    (tmp_path / 'ecdp.yml').write_text(yaml.safe_dump(options))
    out = tmp_path / 'report'
    run_cli([str(REPO / 'scripts' / 'benchmark_adjoint.py'), '-opt', str(tmp_path / 'ecdp.yml'), '--crop', '8',
             '--rtol', '1e-4', '--device', 'cpu', '--out', str(out)], cwd=tmp_path)
    report = (out / 'report.md').read_text()
    rows = dict(re.findall(r'^\| (plain|adjoint) \| (\d+) \| [\d.]+ \| \d+ \|$', report, re.M))
    assert set(rows) == {'plain', 'adjoint'} and rows['plain'] == rows['adjoint'] and int(rows['plain']) > 0
    losses = re.search(r'loss ([\d.]+) vs ([\d.]+)', report).groups()
    assert losses[0] == losses[1]
    overall, cosine = re.search(r'\|difference\| / \|plain\| ([\d.]+) over all parameters \(cosine ([\d.]+)',
                                report).groups()
    # at rtol 1e-4 the adjoint's own backward solve agrees with the exact gradient of the forward one to a few %
    assert float(overall) <= 0.05 and float(cosine) >= 0.999

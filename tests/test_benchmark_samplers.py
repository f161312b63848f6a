"""scripts/benchmark_samplers.py on a tiny model: one row per sampler, NFE as configured, the target line."""
import re
import sys

import cv2
import yaml

from tests.conftest import load_script, make_experiment, make_pairs


def test_sampler_benchmark_reports_every_sampler_with_its_network_evaluations(tmp_path, monkeypatch):
    experiment = make_experiment(tmp_path / 'tiny')  # 100 steps, as the benchmark's configurations need
    lr_dir, hr_dir = make_pairs(tmp_path / 'data', count=2, hr_size=24)
    script = load_script('benchmark_samplers.py')
    out = tmp_path / 'report'
    students = []
    for steps in (4, 1):  # stand-ins of distilled students: their options files say their steps
        student = make_experiment(tmp_path / f'student_s{steps}')
        options = yaml.safe_load((student / f'student_s{steps}.yml').read_text())
        (student / f'student_s{steps}.yml').write_text(yaml.safe_dump(
            {**options, 'train': {'objective': {'type': 'distillation', 'teacher': 'teacher', 'steps': steps}}}))
        students.append(str(student))
    monkeypatch.setattr(sys, 'argv', ['benchmark_samplers.py', '--model', str(experiment), '--lr-dir', lr_dir,
                                      '--hr-dir', hr_dir, '--num-samples', '2', '--tile', '8', '--tile-overlap', '4',
                                      '--device', 'cpu', '--out', str(out), '--students', *students])
    script.main()
    report = (out / 'report.md').read_text()
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r'^\| ([^|]+?) \| (\d+) \|', report, re.M)}
    assert rows['DDPM, 100 steps'] == 100
    assert rows['DDIM, 20 steps, eta 1.0'] == 20 and rows['DPM-Solver++(2M), 5 steps'] == 5
    assert rows['whole image'] == rows['tiled'] == 20
    assert sum(name.startswith('probability-flow ODE') for name in rows) == 2
    assert re.search(r'^- target \(<= 1/5 of the DDPM NFE.*\): (met by|not met)', report, re.M)
    assert 'first samples, tiled vs whole: max |difference|' in report
    assert rows['student student_s4: DDIM, 4 steps, eta 0.0'] == 4
    assert rows['student student_s1: DDIM, 1 steps, eta 0.0'] == 1
    assert re.search(r"^- student student_s1: DDIM, 1 steps, eta 0.0: time per image / the teacher's DDPM, 100 steps: "
                     r'[\d.]+; PSNR [+-][\d.]+ dB, LR-PSNR [+-][\d.]+ dB$', report, re.M)
    grid = cv2.imread(str(out / 'students_grid.png'))
    assert grid.shape[0] == 2 * (24 + 22) and grid.shape[1] == 4 * 24  # 2 images; HR, teacher, 2 students

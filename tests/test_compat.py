"""Each BasicSR 1.4.2 fix in srdiff_basicsr.host.compat, and the import hook."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srdiff_basicsr.host import checkpoints, compat, resume
from tests.conftest import REPO

PACKAGE = REPO / 'srdiff_basicsr'


def python(code, **env):
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd='/',
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_basicsr_imports_on_a_torchvision_without_functional_tensor():
    import torchvision
    import basicsr.data.degradations as degradations
    assert int(torchvision.__version__.split('.')[1]) >= 17  # the module is gone upstream...
    assert degradations.rgb_to_grayscale is torchvision.transforms.functional.rgb_to_grayscale  # ...and aliased


def test_a_checkpoint_write_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / 'net_g_10.pth'
    torch.save({'params': 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('killed mid-write')

    with pytest.raises(RuntimeError, match='killed mid-write'):
        checkpoints.write({'params': Unpicklable()}, target)
    assert torch.load(target, weights_only=True) == {'params': 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net_g_10.pth']


# compat's fixes of BasicSR's own models (what they fix: compat._realesrgan_models_on_their_device)
FIXED_METHODS = {(f'{model}Model', name) for model in ('RealESRNet', 'RealESRGAN')
                 for name in ('__init__', '_dequeue_and_enqueue')}


def test_no_basicsr_model_has_a_method_of_ours_but_compats_fixes():
    """With the plugin loaded, every model BasicSR registers has only its own methods (and compat's two fixes of
    Real-ESRGAN's): our checkpoints, resume and validation are our models' (``models.checkpointed``)."""
    from basicsr.utils.registry import MODEL_REGISTRY
    ours = []
    for name, model in MODEL_REGISTRY:
        for cls in model.__mro__:
            if not cls.__module__.startswith('basicsr.'):
                continue
            for attribute, value in vars(cls).items():
                code = getattr(getattr(value, '__func__', value), '__code__', None)  # a wrapper's too (functools.wraps)
                if code is not None and PACKAGE in Path(code.co_filename).parents \
                        and (cls.__name__, attribute) not in FIXED_METHODS:
                    ours.append(f'{cls.__name__}.{attribute}')
    assert ours == []
    assert len([name for name, model in MODEL_REGISTRY if model.__module__.startswith('basicsr.')]) >= 8


def test_our_models_save_through_our_checkpoints_and_never_non_finite_weights(tmp_path):
    """A model of the plugin (here DegradedSRModel without a degradation: BasicSR's SRModel with our checkpoints)
    writes its network files atomically and refuses NaN weights, and its training state carries the data position;
    torch.save itself is never replaced."""
    from basicsr.models import build_model

    from srdiff_basicsr.errors import DivergenceError
    for folder in ('models', 'training_states'):
        (tmp_path / folder).mkdir()
    opt = dict(name='ours', model_type='DegradedSRModel', scale=4, num_gpu=0, is_train=True, dist=False,
               network_g=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4),
               path=dict(pretrain_network_g=None, models=str(tmp_path / 'models'),
                         training_states=str(tmp_path / 'training_states')),
               train=dict(optim_g=dict(type='Adam', lr=1e-4), scheduler=dict(type='MultiStepLR', milestones=[10],
                          gamma=0.5), pixel_opt=dict(type='L1Loss', loss_weight=1.0), total_iter=10))
    model = build_model(opt)
    save = torch.save
    model.save(0, 3)
    assert torch.save is save
    assert sorted(p.name for p in (tmp_path / 'models').iterdir()) == ['net_g_3.pth']
    state = torch.load(tmp_path / 'training_states' / '3.state', weights_only=False)
    assert state['iter'] == 3 and len(state['optimizers']) == 1 and len(state[resume.STATE_KEY]) == 1
    with torch.no_grad():
        next(model.net_g.parameters()).fill_(float('nan'))
    with pytest.raises(DivergenceError, match='iteration 4: net_g has non-finite weights; no checkpoint written'):
        model.save(0, 4)
    assert sorted(p.name for p in (tmp_path / 'models').iterdir()) == ['net_g_3.pth']
    assert sorted(p.name for p in (tmp_path / 'training_states').iterdir()) == ['3.state']


def resume_opt(tmp_path):
    (tmp_path / 'models').mkdir(exist_ok=True)
    (tmp_path / 'training_states').mkdir(exist_ok=True)
    return {'auto_resume': True, 'name': 'x', 'num_gpu': 0, 'network_g': {},
            'path': {'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'training_states'),
                     'resume_state': None}}


def test_auto_resume_loads_on_cpu_and_skips_a_truncated_newest_state(tmp_path):
    opt = resume_opt(tmp_path)
    for it in (2, 4):
        state = {'iter': it, 'epoch': 0, 'optimizers': [], 'schedulers': []}
        torch.save(state, tmp_path / f'training_states/{it}.state')
        torch.save({'params': {}}, tmp_path / f'models/net_g_{it}.pth')
    (tmp_path / 'training_states' / '6.state').write_bytes(b'truncated')
    state = resume.load_resume_state(opt)
    assert state['iter'] == 4
    assert opt['path']['resume_state'].endswith('training_states/4.state')
    assert opt['path']['pretrain_network_g'] == str(tmp_path / 'models' / 'net_g_4.pth')


def test_auto_resume_skips_a_state_whose_network_files_are_missing(tmp_path):
    opt = resume_opt(tmp_path)
    torch.save({'iter': 2, 'epoch': 0, 'optimizers': [], 'schedulers': []}, tmp_path / 'training_states/2.state')
    assert resume.load_resume_state(opt) is None


def test_the_next_start_removes_the_temporary_files_of_a_killed_save(tmp_path):
    opt = resume_opt(tmp_path)
    opt['auto_resume'] = False
    leftovers = [tmp_path / 'models' / 'net_g_8.pth.tmp', tmp_path / 'models' / '.net_g_8.pth.k2x_9a.tmp',
                 tmp_path / 'training_states' / '.8.state.0qz1lm.tmp']
    kept = [tmp_path / 'models' / 'net_g_6.pth', tmp_path / 'training_states' / '6.state']
    for path in leftovers + kept:
        path.write_bytes(b'x')
    assert resume.load_resume_state(opt) is None
    assert not any(path.exists() for path in leftovers) and all(path.exists() for path in kept)


def test_explicit_resume_state_that_does_not_exist_is_named(tmp_path):
    opt = resume_opt(tmp_path)
    opt['auto_resume'] = False
    opt['path']['resume_state'] = str(tmp_path / 'nope.state')
    with pytest.raises(FileNotFoundError, match='path.resume_state: no such training state file'):
        resume.load_resume_state(opt)


def test_stock_module_entry_root_is_redirected_from_site_packages_to_cwd(tmp_path, monkeypatch):
    import basicsr
    site_root = os.path.dirname(os.path.dirname(os.path.abspath(basicsr.__file__)))
    seen = []
    parse_options = compat._with_root_outside_site_packages(lambda root, is_train=True: seen.append(root))
    monkeypatch.chdir(tmp_path)
    parse_options(site_root)
    parse_options(str(REPO))  # a checkout, or any other root, stays as given
    assert seen == [str(tmp_path), str(REPO)]


def test_hook_imports_nothing_heavy_at_interpreter_start():
    out = python('import sys; print("torch" in sys.modules, "basicsr" in sys.modules, '
                 '"srdiff_basicsr_hook" in sys.modules)')
    assert out == 'False False True'


def test_hook_registers_srdiff_when_basicsr_is_imported():
    out = python('import basicsr; from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY, '
                 'DATASET_REGISTRY; print("SRDiffModel" in MODEL_REGISTRY, "SRDiffUNet" in ARCH_REGISTRY, '
                 '"SRDiffRRDBNet" in ARCH_REGISTRY, "CheckedPairedImageDataset" in DATASET_REGISTRY)')
    assert out == 'True True True True'


def test_hook_can_be_switched_off_and_then_stock_basicsr_does_not_even_import():
    result = subprocess.run([sys.executable, '-c', 'import basicsr'], capture_output=True, text=True, cwd='/',
                            env={**os.environ, 'SRDIFF_BASICSR_HOOK': '0'})
    assert result.returncode != 0
    assert "No module named 'torchvision.transforms.functional_tensor'" in result.stderr  # the upstream problem
    out = python('import sys, torchvision.transforms.functional as f; '
                 'sys.modules["torchvision.transforms.functional_tensor"] = f; '
                 'import basicsr; from basicsr.utils.registry import MODEL_REGISTRY; '
                 'print("SRDiffModel" in MODEL_REGISTRY)', SRDIFF_BASICSR_HOOK='0')
    assert out == 'False'


SAMPLING_ONLY = '''
import sys, torch
from srdiff_basicsr import SRDiffPipeline
opt = {"scale": 4, "network_g": {"type": "SRDiffUNet", "dim": 8, "dim_mults": [1, 2]},
       "network_encoder": {"type": "SRDiffRRDBNet", "num_feat": 8, "num_block": 2, "num_grow_ch": 4},
       "diffusion": {"timesteps": 4}}
pipe = SRDiffPipeline.from_options(opt, sys.argv[1], sys.argv[2], precision="fp32")
sr = pipe(torch.rand(1, 3, 8, 8), seed=0)
assert sr.shape == (1, 3, 32, 32) and torch.isfinite(sr).all()
print(sorted(name for name in sys.modules if name.split(".")[0] == "basicsr" or name in
             ("srdiff_basicsr.plugin", "srdiff_basicsr.host.basicsr_setup", "srdiff_basicsr.host.compat", "torchvision")))
'''


def test_sampling_with_the_pipeline_leaves_basicsr_unimported_with_the_hook_installed(tmp_path):
    """The method layer imports no BasicSR, so the import hook never fires and nothing of BasicSR (its models,
    data, training loop, our patches of them) is loaded or changed by a program that only samples."""
    from srdiff_basicsr.archs.arch_options import build_arch
    torch.manual_seed(0)
    unet = build_arch(dict(type='SRDiffUNet', dim=8, dim_mults=[1, 2], scale=4, encoder_num_feat=8,
                           encoder_num_block=2))
    encoder = build_arch(dict(type='SRDiffRRDBNet', scale=4, num_feat=8, num_block=2, num_grow_ch=4))
    torch.save({'params': unet.state_dict()}, tmp_path / 'unet.pth')
    torch.save({'params': encoder.state_dict()}, tmp_path / 'encoder.pth')
    assert python('import srdiff_basicsr_hook, sys; print(any(type(f).__name__ == "_BasicSRFinder" '
                  'for f in sys.meta_path))') == 'True'  # the hook is armed in these interpreters
    result = subprocess.run([sys.executable, '-c', SAMPLING_ONLY, str(tmp_path / 'unet.pth'),
                             str(tmp_path / 'encoder.pth')], capture_output=True, text=True, cwd='/')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]'


def test_importing_the_plugin_registers_every_arch_of_ours_in_basicsr():
    from basicsr.utils.registry import ARCH_REGISTRY

    from srdiff_basicsr.archs import ARCHS
    assert ARCHS and all(ARCH_REGISTRY.get(name) is cls for name, cls in ARCHS.items())

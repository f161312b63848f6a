"""SRDiffModel in-process: data path, training step, sampling, saving, and its errors."""
import copy
import csv

import pytest
import torch
from basicsr.archs import build_network
from basicsr.models import build_model
from basicsr.utils.matlab_functions import imresize as basicsr_imresize

from srdiff_basicsr.errors import OptionsError, WeightsError
from tests.conftest import TINY_ENCODER, TINY_UNET, save_basicsr_weights, srdiff_options


@pytest.fixture
def encoder_path(tmp_path):
    torch.manual_seed(0)
    return save_basicsr_weights(build_network(dict(TINY_ENCODER, scale=4)), tmp_path / 'encoder.pth')


def make_model(tmp_path, encoder_path, is_train=True, **changes):
    opt = srdiff_options('unit', None, None, encoder_path, is_train=is_train, timesteps=10)
    opt.pop('datasets')
    opt.update(is_train=is_train, dist=False, rank=0, world_size=1)
    opt['path']['models'] = str(tmp_path / 'models')
    opt['path']['training_states'] = str(tmp_path / 'training_states')
    opt['path']['results_root'] = str(tmp_path)
    (tmp_path / 'models').mkdir(parents=True, exist_ok=True)
    (tmp_path / 'training_states').mkdir(parents=True, exist_ok=True)
    if not is_train and 'path__pretrain_network_g' not in changes:  # a test needs weights: random ones here
        unet = dict(TINY_UNET, scale=4, encoder_num_feat=8, encoder_num_block=2)
        for key in [k for k in changes if k.startswith('network_g__')]:
            unet[key.split('__', 1)[1]] = changes[key]
        opt['path']['pretrain_network_g'] = save_basicsr_weights(build_network(unet), tmp_path / 'random_unet.pth')
    for dotted, value in changes.items():
        *parents, leaf = dotted.split('__')
        node = opt
        for p in parents:
            node = node[p]
        node[leaf] = value
    return build_model(opt)


def batch(lr_size=4, scale=4, n=2):
    torch.manual_seed(1)
    return {'lq': torch.rand(n, 3, lr_size, lr_size), 'gt': torch.rand(n, 3, lr_size * scale, lr_size * scale),
            'lq_path': ['a.png'] * n, 'gt_path': ['b.png'] * n}


def test_lr_up_is_matlab_bicubic_of_the_lr_batch(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path)
    data = batch()
    model.feed_data(data)
    for i in range(2):
        assert (model.lr_up[i] - basicsr_imresize(data['lq'][i], 4)).abs().max() < 1e-5


def test_residual_round_trip_and_clamping(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path)
    hr, lr_up = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    x0 = model.pipeline.space.encode(hr, lr_up)
    assert torch.allclose(x0, ((hr - lr_up) * 4).clamp(-1, 1), atol=1e-6)  # [-1,1] images, res_rescale 2
    inside = (hr - lr_up).abs() < 0.25
    assert torch.allclose(model.pipeline.space.decode(x0, lr_up)[inside], hr[inside], atol=1e-6)
    ecdp = make_model(tmp_path / 'ecdp', encoder_path, diffusion={'res_rescale': 2.5, 'clip_x0': False})
    x0 = ecdp.pipeline.space.encode(hr, lr_up)  # ECDP's (hr - bicubic) * 5 on [0, 1] images, not clamped
    assert torch.allclose(x0, (hr - lr_up) * 5, atol=1e-6) and x0.abs().max() > 1
    assert torch.allclose(ecdp.pipeline.space.decode(x0, lr_up), hr, atol=1e-6)


def test_training_step_updates_the_unet_and_never_the_encoder(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path)
    unet_before = copy.deepcopy(model.net_g.state_dict())
    encoder_before = copy.deepcopy(model.net_encoder.state_dict())
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert model.log_dict['l_noise'] > 0
    assert any(not torch.equal(unet_before[k], v) for k, v in model.net_g.state_dict().items())
    assert all(torch.equal(encoder_before[k], v) for k, v in model.net_encoder.state_dict().items())
    assert not model.net_encoder.training
    assert all(not p.requires_grad for p in model.net_encoder.parameters())


@pytest.mark.parametrize('pixel_opt,loss', [(None, torch.nn.functional.l1_loss),
                                            ({'type': 'MSELoss', 'loss_weight': 0.5},
                                             lambda a, b: 0.5 * torch.nn.functional.mse_loss(a, b))])
def test_noise_loss_comes_from_basicsr_loss_registry(tmp_path, encoder_path, pixel_opt, loss):
    changes = {} if pixel_opt is None else {'train__pixel_opt': pixel_opt}
    model = make_model(tmp_path, encoder_path, train__precision='fp32', **changes)  # the exact math
    unet = copy.deepcopy(model.net_g)
    model.feed_data(batch())
    torch.manual_seed(5)
    model.optimize_parameters(1)
    torch.manual_seed(5)  # the same t and eps, drawn in the same order
    x0 = ((model.gt - model.lr_up) * 2 * 2).clamp(-1, 1)
    t = torch.randint(0, 10, (2, ))
    eps = torch.randn_like(x0)
    a = model.pipeline.schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        cond = unet.project_condition(model.net_encoder.features(model.lq), model.lr_up * 2 - 1)
        expected = loss(unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t, cond), eps)
    assert model.log_dict['l_noise'] == pytest.approx(expected.item(), rel=1e-5)


def test_sampling_runs_the_encoder_once_and_the_unet_once_per_step(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path)
    calls = {'encoder': 0, 'cond_proj': 0, 'unet': 0}
    model.net_encoder.conv_first.register_forward_hook(lambda *a: calls.__setitem__('encoder', calls['encoder'] + 1))
    model.net_g.cond_proj.register_forward_hook(lambda *a: calls.__setitem__('cond_proj', calls['cond_proj'] + 1))
    model.net_g.final_conv.register_forward_hook(lambda *a: calls.__setitem__('unet', calls['unet'] + 1))
    model.feed_data(batch())
    model.test()
    assert calls == {'encoder': 1, 'cond_proj': 1, 'unet': 10}
    assert model.output.shape == (2, 3, 16, 16)
    assert model.output.min() >= 0 and model.output.max() <= 1
    assert model.net_g.training  # back to training mode after sampling


def test_sampling_is_seeded_and_handles_lr_sizes_the_unet_cannot_halve(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path, network_g__dim_mults=[1, 2, 2])  # HR must divide by 4
    lq = torch.rand(1, 3, 5, 7)
    first = model.pipeline(lq, generator=torch.Generator().manual_seed(3))
    again = model.pipeline(lq, generator=torch.Generator().manual_seed(3))
    assert first.shape == (1, 3, 20, 28)
    assert torch.equal(first, again)
    assert not torch.equal(first, model.pipeline(lq, generator=torch.Generator().manual_seed(4)))


def test_images_smaller_than_the_unet_needs_are_padded_and_cropped_back(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path, network_g__dim_mults=[1, 2, 2, 4])  # coarsest level: HR / 8
    for lr_size in ((1, 1), (1, 3), (3, 2)):
        sr = model.pipeline(torch.rand(1, 3, *lr_size), generator=torch.Generator().manual_seed(0))
        assert sr.shape == (1, 3, lr_size[0] * 4, lr_size[1] * 4) and sr.isfinite().all()


def test_save_writes_unet_encoder_and_state_and_the_folder_alone_reloads(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path)
    model.feed_data(batch())
    model.optimize_parameters(1)
    model.save(0, 3)
    assert sorted(p.name for p in (tmp_path / 'models').iterdir()) == ['net_encoder_3.pth', 'net_g_3.pth']
    assert (tmp_path / 'training_states' / '3.state').is_file()
    reloaded = make_model(tmp_path, str(tmp_path / 'models' / 'net_encoder_3.pth'), is_train=False,
                          path__pretrain_network_g=str(tmp_path / 'models' / 'net_g_3.pth'))
    lq = torch.rand(1, 3, 4, 4)
    assert torch.equal(model.pipeline(lq, generator=torch.Generator().manual_seed(0)),
                       reloaded.pipeline(lq, generator=torch.Generator().manual_seed(0)))


def test_hr_that_is_not_scale_times_lr_is_refused_with_the_files(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path)
    data = batch()
    data['gt'] = data['gt'][..., :15, :]
    with pytest.raises(ValueError, match=r'not scale 4 x LR size.*a\.png.*b\.png'):
        model.feed_data(data)


def test_encoder_checkpoint_that_does_not_fit_names_keys_and_shapes(tmp_path):
    wrong = build_network(dict(TINY_ENCODER, scale=4, num_feat=16, num_block=3))
    path = save_basicsr_weights(wrong, tmp_path / 'wrong.pth')
    with pytest.raises(WeightsError) as error:
        make_model(tmp_path, path)
    message = str(error.value)
    assert 'path.pretrain_network_encoder' in message and 'wrong.pth' in message
    assert 'not in the network: body.2.' in message
    assert 'shapes differ: body.0.rdb1.conv1.weight: file (4, 16, 3, 3), network (4, 8, 3, 3)' in message


def test_missing_encoder_checkpoint_is_named(tmp_path):
    with pytest.raises(WeightsError, match='no such weight file: .*nowhere.pth'):
        make_model(tmp_path, str(tmp_path / 'nowhere.pth'))


@pytest.mark.parametrize('change,message', [
    (dict(diffusion__steps=10), r"diffusion: unknown option\(s\) \['steps'\]"),
    (dict(diffusion__loss='l2'), r"diffusion.loss: .*loss registry.*train.pixel_opt: \{type: MSELoss"),
    (dict(diffusion__parametrization='score'), "diffusion.parametrization: must be one of"),
    (dict(train__perceptual_opt={'type': 'PerceptualLoss'}), 'train.perceptual_opt: SRDiff is trained on the noise'),
    (dict(train__precision='fp16'), 'train.precision: fp16 needs a CUDA device'),
    (dict(network_g__width=3), r"network_g: unknown option\(s\) \['width'\] for SRDiffUNet"),
    (dict(network_encoder__type='NoSuchNet'), "network_encoder.type: 'NoSuchNet' is not a network of srdiff_basicsr"),
    (dict(network_g__scale=8), 'network_g.scale is 8 but scale is 4'),
    (dict(network_g__encoder_num_feat=16), r'network_g.encoder_num_feat \(16\) must equal network_encoder.num_feat'),
    (dict(path__pretrain_network_encoder=None), 'path.pretrain_network_encoder is not set'),
])
def test_option_errors_name_the_option(tmp_path, encoder_path, change, message):
    with pytest.raises(OptionsError, match=message):
        make_model(tmp_path, encoder_path, **change)


def test_ema_copy_is_trained_saved_as_params_ema_and_used_for_sampling(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path, train__ema_decay=0.5)
    model.feed_data(batch())
    for it in range(1, 3):
        model.optimize_parameters(it)
    ema, net = model.net_g_ema.state_dict(), model.net_g.state_dict()
    first = next(k for k in net if k.endswith('weight'))
    assert not torch.equal(ema[first], net[first])
    model.save(0, 2)
    saved = torch.load(tmp_path / 'models' / 'net_g_2.pth', weights_only=True)
    assert set(saved) == {'params', 'params_ema'} and torch.equal(saved['params_ema'][first], ema[first])
    calls = []
    model.net_g_ema.final_conv.register_forward_hook(lambda *a: calls.append(1))
    model.test()
    assert len(calls) == 10


def test_validation_with_several_samples_averages_metrics_and_reports_sigma(tmp_path, encoder_path):
    import cv2
    import numpy as np
    from basicsr.metrics import calculate_psnr
    from torch.utils.data import DataLoader

    from srdiff_basicsr.data import CheckedPairedImageDataset
    from srdiff_basicsr.metrics import lr_psnr
    from tests.conftest import dataset_opt, make_pairs

    lr_dir, hr_dir = make_pairs(tmp_path / 'data', count=2, hr_size=16)
    # an LR that is not the bicubic of its HR: LR-PSNR must use the LR itself, not one made from the HR
    cv2.imwrite(f'{lr_dir}/000.png', np.clip(cv2.imread(f'{lr_dir}/000.png').astype(int) + 12, 0, 255).astype(np.uint8))
    loader = DataLoader(CheckedPairedImageDataset(dataset_opt('pairs', lr_dir, hr_dir, 'val')), batch_size=1)
    model = make_model(tmp_path, encoder_path, is_train=False, val__num_samples=3,
                       val__metrics={'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                                     'lr_psnr': {'type': 'calculate_lr_psnr', 'scale': 4}})
    model.opt['path']['visualization'] = str(tmp_path / 'vis')
    model.validation(loader, current_iter='unit', tb_logger=None, save_img=True)

    psnrs, lr_psnrs, sigmas = [], [], []
    for name in ('000', '001'):
        hr = cv2.imread(f'{hr_dir}/{name}.png')
        lr = cv2.imread(f'{lr_dir}/{name}.png')
        samples = [cv2.imread(str(tmp_path / 'vis' / 'pairs' / f'{name}_unit{s}.png')) for s in ('', '_s1', '_s2')]
        psnrs += [calculate_psnr(sr, hr, 0) for sr in samples]
        lr_psnrs += [lr_psnr(sr, lr, 4) for sr in samples]
        sigmas.append(np.stack(samples).astype(np.float64).std(axis=0).mean())
    assert model.metric_results['psnr'] == pytest.approx(np.mean(psnrs))
    assert model.metric_results['lr_psnr'] == pytest.approx(np.mean(lr_psnrs))  # the real LR was passed
    assert model.metric_results['sigma'] == pytest.approx(np.mean(sigmas)) and model.metric_results['sigma'] > 0

    # a test run writes the per-image means and the summary, naming the protocol
    with open(tmp_path / 'metrics_pairs.csv') as f:
        rows = list(csv.DictReader(f))
    assert [row['image'] for row in rows] == ['000', '001']
    assert [float(row['psnr']) for row in rows] == pytest.approx([np.mean(psnrs[:3]), np.mean(psnrs[3:])], abs=1e-6)
    assert [float(row['sigma']) for row in rows] == pytest.approx(sigmas, abs=1e-6)
    summary = (tmp_path / 'summary_pairs.md').read_text()
    assert '- protocol: paper (RGB, no border crop)' in summary and '- samples per image: 3' in summary
    assert f"| lr_psnr | {model.metric_results['lr_psnr']:.6f} |" in summary


def test_execution_options_keep_the_samples(tmp_path, encoder_path, monkeypatch):
    model = make_model(tmp_path, encoder_path, is_train=False, val__precision='fp32')
    lq = torch.rand(1, 3, 6, 6)
    reference = model.pipeline(lq, generator=torch.Generator().manual_seed(0))
    model.pipeline.set_execution(precision='fp32', channels_last=True)
    assert torch.allclose(model.pipeline(lq, generator=torch.Generator().manual_seed(0)), reference, atol=1e-5)
    model.pipeline.set_execution(precision='bf16')
    bf16 = model.pipeline(lq, generator=torch.Generator().manual_seed(0))
    assert bf16.dtype == torch.float32 and 0 < (bf16 - reference).abs().mean() < 0.05
    compiled = []
    monkeypatch.setattr(torch, 'compile', lambda net: compiled.append(net) or net)
    model.pipeline.set_execution(compile=True)
    model.pipeline(lq)
    model.pipeline(lq)
    assert compiled == [model.net_g]  # compiled once, then reused
    with pytest.raises(OptionsError, match='val.precision: fp16 needs a CUDA device'):
        model.pipeline.set_execution(precision='fp16')
    with pytest.raises(OptionsError, match="val.precision: must be one of"):
        model.pipeline.set_execution(precision='int8')


def test_per_image_generators_make_batched_samples_equal_to_single_ones(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path, is_train=False, val__sampler={'type': 'ddim', 'steps': 4, 'eta': 1.0})
    lqs = torch.rand(2, 3, 6, 6)
    alone = [model.pipeline(lqs[i:i + 1].expand(2, -1, -1, -1), generator=torch.Generator().manual_seed(i))
             for i in range(2)]
    together = model.pipeline(lqs.repeat_interleave(2, 0),
                              generator=[(torch.Generator().manual_seed(0), 2), (torch.Generator().manual_seed(1), 2)])
    assert torch.allclose(together, torch.cat(alone), atol=1e-5)


@pytest.mark.filterwarnings('ignore:for .*copying from a non-meta parameter')
def test_a_device_with_an_index_is_honoured_by_the_model_and_its_pipeline(tmp_path, encoder_path):
    # BasicSR itself only knows plain 'cuda' or 'cpu'; 'meta' stands in for cuda:1 on a machine without GPUs
    model = make_model(tmp_path, encoder_path, is_train=False, device='meta')
    assert model.device == torch.device('meta') and model.pipeline.device == torch.device('meta')
    for net in (model.net_g, model.net_encoder, model.pipeline.unet, model.pipeline.encoder):
        assert all(p.device.type == 'meta' for p in net.parameters())
    assert model.pipeline.schedule.betas.device.type == 'meta'


def test_training_precision_options_reach_the_step_and_keep_weights_in_fp32(tmp_path, encoder_path, monkeypatch):
    losses = {}
    for name, changes in (('fp32', {'train__precision': 'fp32'}),
                          ('channels_last', {'train__precision': 'fp32', 'train__channels_last': True}),
                          ('bf16', {'train__precision': 'bf16', 'train__ema_decay': 0.5})):
        torch.manual_seed(0)  # the same initial weights
        model = make_model(tmp_path / name, encoder_path, **changes)
        model.feed_data(batch())
        torch.manual_seed(5)
        model.optimize_parameters(1)
        losses[name] = model.log_dict['l_noise']
        nets = [model.net_g] + ([model.net_g_ema] if hasattr(model, 'net_g_ema') else [])
        assert all(p.dtype == torch.float32 for net in nets for p in net.parameters())
    assert losses['channels_last'] == pytest.approx(losses['fp32'], rel=1e-5)
    assert losses['bf16'] != losses['fp32'] and losses['bf16'] == pytest.approx(losses['fp32'], rel=0.05)
    compiled = []
    monkeypatch.setattr(torch, 'compile', lambda net: compiled.append(net) or net)
    model = make_model(tmp_path / 'compiled', encoder_path, train__compile=True)
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert compiled == [model.net_g]


def test_a_diverging_run_stops_naming_the_iteration_and_never_saves_broken_weights(tmp_path, encoder_path):
    from srdiff_basicsr.errors import DivergenceError
    model = make_model(tmp_path, encoder_path, train__optim_g={'type': 'Adam', 'lr': 1e10})
    model.feed_data(batch())
    with pytest.raises(DivergenceError, match=r'iteration (\d+): the noise (loss|gradient) is not finite') as error:
        for it in range(1, 20):
            model.optimize_parameters(it)
    assert all(torch.isfinite(p).all() for p in model.net_g.parameters())  # the bad step was not taken
    with torch.no_grad():
        next(model.net_g.parameters()).fill_(float('nan'))
    with pytest.raises(DivergenceError, match='net_g has non-finite weights; no checkpoint written'):
        model.save(0, 7)
    assert list((tmp_path / 'models').iterdir()) == [] and list((tmp_path / 'training_states').iterdir()) == []
    assert 'train.skip_nonfinite' in str(error.value)


def test_skip_nonfinite_skips_and_counts_the_bad_steps(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path, train__skip_nonfinite=True)
    model.feed_data(batch())
    model.optimize_parameters(1)
    before = copy.deepcopy(model.net_g.state_dict())
    model.gt = model.gt * float('nan')  # a batch whose loss is NaN
    model.optimize_parameters(2)
    assert model.skipped_steps == 1 and model.log_dict == {'skipped_steps': 1.0}
    assert all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())


def test_one_non_finite_gradient_element_with_a_finite_loss_stops_the_step(tmp_path, encoder_path):
    from srdiff_basicsr.errors import DivergenceError
    model = make_model(tmp_path, encoder_path)
    model.feed_data(batch())
    before = copy.deepcopy(model.net_g.state_dict())
    weight = model.net_g.final_conv[1].weight

    def one_inf(grad):
        grad = grad.clone()
        grad.view(-1)[3] = float('inf')
        return grad
    weight.register_hook(one_inf)
    with pytest.raises(DivergenceError, match=r'iteration 1: the noise gradient is not finite'):
        model.optimize_parameters(1)
    assert all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())


@pytest.mark.parametrize('change,message', [
    (dict(diffusion__timesteps=10.5), r'diffusion.timesteps: must be an integer >= 1, got 10.5'),
    (dict(diffusion__timesteps='abc'), "diffusion.timesteps: must be an integer >= 1, got 'abc'"),
    (dict(diffusion__timesteps=0), 'diffusion.timesteps: must be an integer >= 1, got 0'),
    (dict(diffusion__cosine_s=-1), 'diffusion.cosine_s: must be a number > 0, got -1'),
    (dict(diffusion__res_rescale=0), 'diffusion.res_rescale: must be a number > 0, got 0'),
    (dict(diffusion__schedule='linear'), "diffusion.schedule: must be one of \\['cosine', 'scaled_linear', 'vp'\\], got 'linear'"),
    (dict(network_g__dim=0), 'network_g.dim: must be an integer >= 1, got 0'),
    (dict(network_g__dim_mults=[]), r'network_g.dim_mults: must be a non-empty list of integers >= 1, got \[\]'),
    (dict(train__ema_decay=2.0), 'train.ema_decay: must be a number from 0 .* got 2.0'),
    (dict(train__optim_g={'type': 'Adam', 'lr': '1e-4'}), "train.optim_g.lr: .*!!float 1e-4.*got '1e-4'"),
    (dict(val__num_samples=0), 'val.num_samples: must be an integer >= 1, got 0'),
    (dict(train__grad_clip={'max_norm': 1}), r"train.grad_clip: must be \{norm: c\} or \{value: c\}"),
    (dict(train__grad_clip={'value': 0}), r"train.grad_clip: must be .* with c > 0, got \{'value': 0\}"),
    (dict(val__protocol='ycbcr'), "val.protocol: must be one of \\['basicsr', 'paper'\\], got 'ycbcr'"),
])
def test_option_values_are_checked_before_anything_is_built(tmp_path, encoder_path, change, message):
    with pytest.raises(OptionsError, match=message):
        make_model(tmp_path, encoder_path, **change)


@pytest.mark.parametrize('clip', [{'value': 1e-3}, {'norm': 1e-2}])
def test_grad_clip_limits_the_step_as_torch_clipping_of_the_plain_gradient(tmp_path, encoder_path, clip):
    steps = {}  # the gradients the optimizer steps with
    for name, changes in (('plain', {}), ('clipped', {'train__grad_clip': clip})):
        torch.manual_seed(0)
        model = make_model(tmp_path / name, encoder_path, **changes)
        model.optimizers[0].step = lambda: steps.setdefault(name, [p.grad.clone() for p in model.net_g.parameters()])
        model.feed_data(batch())
        torch.manual_seed(5)
        model.optimize_parameters(1)
    grads = steps['plain']
    assert ('grad_norm' in model.log_dict) == ('norm' in clip)
    if 'value' in clip:
        expected = [g.clamp(-clip['value'], clip['value']) for g in grads]
        assert any((g.abs() > clip['value']).any() for g in grads)  # the limit binds
    else:
        norm = torch.cat([g.flatten() for g in grads]).norm()
        assert norm > clip['norm'] and model.log_dict['grad_norm'] == pytest.approx(norm.item(), rel=1e-5)
        expected = [g * clip['norm'] / norm for g in grads]
    for got, want in zip(steps['clipped'], expected):
        assert torch.allclose(got, want, atol=1e-7, rtol=1e-4)


def test_a_test_run_refuses_untrained_or_mismatched_weights(tmp_path, encoder_path):
    with pytest.raises(OptionsError, match='path.pretrain_network_g is not set: a test would sample with an untrained'):
        make_model(tmp_path, encoder_path, is_train=False, path__pretrain_network_g=None)
    from tests.conftest import make_experiment
    experiment = make_experiment(tmp_path / 'exp', timesteps=10)
    weights = str(experiment / 'models' / 'net_g_latest.pth')
    make_model(tmp_path, encoder_path, is_train=False, path__pretrain_network_g=weights)  # the same options: fine
    with pytest.raises(OptionsError, match=r'trained with other options .*exp.yml.*diffusion.timesteps: 100 here, 10 '):
        make_model(tmp_path, encoder_path, is_train=False, path__pretrain_network_g=weights, diffusion__timesteps=100)


def joint(lr=1e-3, **changes):
    return {'train__optim_encoder': {'type': 'Adam', 'lr': lr}, **changes}


def test_joint_training_updates_the_encoder_with_its_own_optimizer_and_auxiliary_l1(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path, **joint(lr=1e-3))
    assert model.optimizers[1] is model.optimizer_encoder and model.optimizer_encoder.param_groups[0]['lr'] == 1e-3
    encoder = copy.deepcopy(model.net_encoder)
    data = batch()
    model.feed_data(data)
    model.optimize_parameters(1)
    # the default auxiliary loss: the official L1 on [-1, 1] images, i.e. 2 x L1 on [0, 1] images
    with torch.no_grad():
        expected = (encoder(data['lq']) * 2 - data['gt'] * 2).abs().mean()
    assert model.log_dict['l_encoder_l1'] == pytest.approx(expected.item(), rel=1e-5)
    assert model.net_encoder.training and all(p.requires_grad for p in model.net_encoder.parameters())
    changed = [k for k, v in model.net_encoder.state_dict().items() if not torch.equal(encoder.state_dict()[k], v)]
    assert len(changed) > 10
    # the sampling pipeline uses the trained encoder
    assert model.pipeline.encoder is model.net_encoder


def test_joint_training_with_ema_saves_the_trained_encoder_and_its_ema_and_resumes_them(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path, **joint(train__ema_decay=0.5))
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert model.pipeline.encoder is model.net_encoder_ema
    model.save(0, 1)
    saved = torch.load(tmp_path / 'models' / 'net_encoder_1.pth', weights_only=True)
    assert set(saved) == {'params', 'params_ema'}
    for key, value in model.net_encoder.state_dict().items():
        assert torch.equal(saved['params'][key], value) and torch.equal(saved['params_ema'][key],
                                                                         model.net_encoder_ema.state_dict()[key])
    assert any(not torch.equal(saved['params'][k], saved['params_ema'][k]) for k in saved['params'])
    # a resumed run (BasicSR points pretrain_network_encoder at the checkpoint) continues both
    resumed = make_model(tmp_path, str(tmp_path / 'models' / 'net_encoder_1.pth'), **joint(train__ema_decay=0.5))
    for key, value in resumed.net_encoder.state_dict().items():
        assert torch.equal(value, saved['params'][key])
        assert torch.equal(resumed.net_encoder_ema.state_dict()[key], saved['params_ema'][key])


def test_encoder_losses_without_a_trained_encoder_are_refused(tmp_path, encoder_path):
    with pytest.raises(OptionsError, match='train.encoder_losses: the encoder is frozen; set train.optim_encoder'):
        make_model(tmp_path, encoder_path, train__encoder_losses={'l1': {'type': 'L1Loss'}})
    with pytest.raises(OptionsError, match="train.encoder_losses.ssim.type: no loss named 'SSIMLoss'"):
        make_model(tmp_path, encoder_path, **joint(train__encoder_losses={'ssim': {'type': 'SSIMLoss'}}))


def test_the_training_state_keeps_the_fp16_gradient_scale(tmp_path, encoder_path):
    model = make_model(tmp_path, encoder_path)
    model.grad_scaler = torch.amp.GradScaler('cpu', init_scale=1024.0)  # as train.precision: fp16 sets one on CUDA
    model.grad_scaler.scale(torch.ones(1))  # as a training step does, then a scale lowered by overflows
    model.grad_scaler.update(new_scale=256.0)
    model.save_training_state(0, 1)
    state = torch.load(tmp_path / 'training_states' / '1.state', weights_only=True)
    resumed = make_model(tmp_path, encoder_path)
    resumed.grad_scaler = torch.amp.GradScaler('cpu', init_scale=65536.0)
    resumed.resume_training(state)
    assert resumed.grad_scaler.get_scale() == 256.0


def test_an_ecdp_style_step_draws_continuous_times_and_trains_both_heads(tmp_path, encoder_path):
    """diffusion.schedule: vp and parametrization: hybrid: t ~ U(0, t_max) continuous, the network given t, its
    eps and x0 heads trained against eps and x0, each head's loss weighted by train.head_weights."""
    diffusion = {'schedule': 'vp', 'timesteps': 10, 'parametrization': 'hybrid'}
    model = make_model(tmp_path, encoder_path, diffusion=diffusion, network_g__num_out_ch=6,
                       train__pixel_opt={'type': 'MSELoss', 'loss_weight': 1.0},
                       train__head_weights={'eps': 1.0, 'x0': 0.5}, train__precision='fp32')
    unet = copy.deepcopy(model.net_g)
    model.feed_data(batch())
    torch.manual_seed(5)
    model.optimize_parameters(1)
    torch.manual_seed(5)
    x0 = ((model.gt - model.lr_up) * 2 * 2).clamp(-1, 1)
    t_continuous = torch.rand(2, dtype=torch.float64) * 300
    eps = torch.randn_like(x0)
    s = t_continuous / 300
    a = torch.exp(-(0.1 * s + 19.9 * s**2 / 2)).float().view(-1, 1, 1, 1)
    with torch.no_grad():
        cond = unet.project_condition(model.net_encoder.features(model.lq), model.lr_up * 2 - 1)
        eps_hat, x0_hat = unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t_continuous.float(), cond).chunk(2, dim=1)
    assert model.log_dict['l_noise_eps'] == pytest.approx(torch.nn.functional.mse_loss(eps_hat, eps).item(), rel=1e-4)
    assert model.log_dict['l_noise_x0'] == pytest.approx(0.5 * torch.nn.functional.mse_loss(x0_hat, x0).item(),
                                                         rel=1e-4)


@pytest.mark.parametrize('diffusion,weights,message', [
    ({}, {'eps': 1.0}, 'train.head_weights: diffusion.parametrization eps has one output'),
    ({'parametrization': 'hybrid'}, {'eps': 1.0}, r"train.head_weights: must be a weight >= 0 for each of the heads "
                                                  r"\['eps', 'x0'\], not all 0, got \{'eps': 1.0\}"),
    ({'parametrization': 'hybrid'}, {'eps': 0, 'x0': 0}, 'train.head_weights: must be a weight >= 0'),
])
def test_head_weights_are_checked_against_the_parametrizations_heads(tmp_path, encoder_path, diffusion, weights,
                                                                     message):
    unet = {'network_g__num_out_ch': 6} if diffusion else {}
    with pytest.raises(OptionsError, match=message):
        make_model(tmp_path, encoder_path, diffusion=diffusion, train__head_weights=weights, **unet)


def test_the_unet_outputs_must_match_the_parametrizations_heads(tmp_path, encoder_path):
    with pytest.raises(OptionsError, match='network_g.num_out_ch is 3, but diffusion.parametrization hybrid needs 6'):
        make_model(tmp_path, encoder_path, diffusion={'parametrization': 'hybrid'})


ECDP_TINY = dict(diffusion={'schedule': 'vp', 'timesteps': 10, 'parametrization': 'hybrid', 'res_rescale': 2.5,
                            'clip_x0': False}, network_g__num_out_ch=6)


@pytest.mark.parametrize('flow,sampler', [('ode', {}), ('ode_vp', {'t_end': 0.1})])
def test_image_quality_fine_tuning_scores_the_ode_sample_and_trains_the_unet(tmp_path, encoder_path, flow, sampler):
    ode = {'rtol': 1e-2, 'atol': 1e-2}
    model = make_model(tmp_path, encoder_path,
                       train__objective={'type': 'image_quality', 'loss': {'type': 'L1Loss'}, 'flow': flow,
                                         **sampler, **ode}, **ECDP_TINY)
    before = copy.deepcopy(model.pipeline)  # its networks as they are before the step
    model.feed_data(batch())
    torch.manual_seed(5)
    model.optimize_parameters(1)
    torch.manual_seed(5)  # the step's prior noise, the first draw
    x_T = torch.randn_like(model.lr_up)
    sr = before(model.lq, sampler={'type': flow, **sampler, **ode}, start=(x_T, 9))
    assert model.log_dict['l_image_quality'] == pytest.approx(torch.nn.functional.l1_loss(sr, model.gt).item(),
                                                              rel=1e-4)
    assert 'l_noise_eps' not in model.log_dict
    assert all(not torch.equal(a, b) for a, b in zip(before.unet.parameters(), model.net_g.parameters())
               if a.abs().sum() > 0)


def test_image_quality_with_vgg19_features_loads_the_weights_basicsr_finds(tmp_path, encoder_path, monkeypatch):
    import torchvision
    from basicsr.archs import vgg_arch

    from srdiff_basicsr.models import image_quality
    missing = ([str(tmp_path / 'nowhere' / 'vgg19-dcbb9e9d.pth')] * 2, 'https://download.pytorch.org/vgg19.pth')
    monkeypatch.setattr(image_quality, 'vgg_weight_files', lambda vgg_type: missing)
    with pytest.raises(OptionsError, match=r"vgg19 ImageNet weights of BasicSR's PerceptualLoss are missing .*put "
                                           r'https://download.pytorch.org/vgg19.pth at .*nowhere/vgg19-dcbb9e9d.pth'):
        make_model(tmp_path, encoder_path, train__objective={'type': 'image_quality'}, **ECDP_TINY)
    weights = tmp_path / 'vgg19.pth'
    weights.touch()
    monkeypatch.setattr(image_quality, 'vgg_weight_files', lambda vgg_type: ([str(weights)], 'url'))
    monkeypatch.setattr(vgg_arch, 'VGG_PRETRAIN_PATH', str(tmp_path / 'absent.pth'))
    built = []  # a random VGG19 stands for the ImageNet one
    monkeypatch.setattr(vgg_arch.vgg, 'vgg19',
                        lambda pretrained: built.append(pretrained) or torchvision.models.vgg19())
    model = make_model(tmp_path, encoder_path, train__objective={'type': 'image_quality', 'rtol': 1e-2, 'atol': 1e-2},
                       **ECDP_TINY)
    assert built == [True]
    loss, _ = model.objective_state
    assert list(loss.layer_weights) == ['conv5_4'] and loss.perceptual_weight == 0.5
    assert len(loss.vgg.vgg_net) == 35  # VGG19 features[:35], up to conv5_4 before its ReLU
    model.feed_data(batch(lr_size=8))
    model.optimize_parameters(1)
    assert model.log_dict['l_image_quality'] > 0


def test_the_collapse_guard_arms_below_the_trivial_level_and_stops_after_intervals_back_at_it():
    from srdiff_basicsr.errors import DivergenceError
    from srdiff_basicsr.models.collapse import CollapseGuard

    def run(ratios, intervals=3):
        guard = CollapseGuard(intervals, 0.95, print_freq=2)
        for interval, ratio in enumerate(ratios):
            for step in (1, 2):
                guard(2 * interval + step, ratio * 0.8, 0.8)
    run([1.0] * 10)  # never learnt anything: not a collapse
    run([1.0, 0.5, 1.0, 1.0, 0.6, 1.0, 1.0, 0.9])  # back at the trivial level twice in a row only
    with pytest.raises(DivergenceError, match=r'^iteration 10: the network collapsed: .* for 3 logged intervals, '
                                              r'since iteration 5 \(1\.00 x in the last\)'):
        run([1.0, 0.5, 1.0, 1.0, 1.0, 0.5])
    with pytest.raises(DivergenceError, match='iteration 6: '):
        run([0.9, 0.96, 3.0], intervals=2)
    guard = CollapseGuard(1, 0.5, print_freq=1)
    guard(1, 0.2, 0.8)  # armed
    with pytest.raises(DivergenceError, match='iteration 2: '):
        guard(2, 0.4, 0.8)  # exactly the level counts as the trivial level


def test_a_run_whose_network_collapses_stops_naming_the_iteration(tmp_path, encoder_path):
    """A tiny SRADM that learns at lr 3e-3, then collapses at lr 0.05; train.collapse: ~ lets it go on."""
    from srdiff_basicsr.errors import DivergenceError
    sradm = dict(network_g__window_attn_levels=[1], network_g__window_attn_mid=True, network_g__window_size=4,
                 network_g__window_heads=2, logger={'print_freq': 10})

    def train(model, iterations):
        torch.manual_seed(0)
        data = batch(lr_size=8, n=4)
        for it in range(1, iterations + 1):
            if it == 61:
                for group in model.optimizers[0].param_groups:
                    group['lr'] = 0.05
            model.feed_data(data)
            model.optimize_parameters(it)
        return model

    with pytest.raises(DivergenceError, match=r'^iteration (\d+): the network collapsed') as error:
        train(make_model(tmp_path, encoder_path, train__optim_g={'type': 'Adam', 'lr': 3e-3}, **sradm), 150)
    assert 70 <= int(str(error.value).split()[1].rstrip(':')) <= 150
    train(make_model(tmp_path, encoder_path, train__optim_g={'type': 'Adam', 'lr': 3e-3}, train__collapse=None,
                     **sradm), 100)

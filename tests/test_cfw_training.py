"""StableSR's second stage: the data a first-stage model samples (the official generate_vqgan_data layout), the
PatchGAN and LPIPS of its loss, and the CFW layers trained in BasicSR's loop (only they change, the GAN starts at
disc_start, a killed run resumes bit-exactly, the result tests through BasicSR's stock entry)."""
import os
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srdiff_basicsr.archs.arch_options import build_arch
from srdiff_basicsr.archs.patchgan_discriminator_arch import PatchGANDiscriminator
from srdiff_basicsr.conversion.stablesr import network_options
from srdiff_basicsr.data.cfw_latent_dataset import CFWLatentDataset
from srdiff_basicsr.diffusion.condition import TimeAwareCondition
from srdiff_basicsr.diffusion.noise import Replay
from srdiff_basicsr.diffusion.schedule import DiscreteSchedule
from srdiff_basicsr.diffusion.space import VAELatentSpace
from srdiff_basicsr.errors import DatasetError, OptionsError
from srdiff_basicsr.inference.cfw_data import generate_cfw_data, matched_pairs
from srdiff_basicsr.losses.lpips_loss import LPIPSLoss
from srdiff_basicsr.metrics.lpips_metric import lpips_network
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import make_pairs, save_basicsr_weights, write_options
from tests.stablesr_fixtures import tiny_config
from tests.test_stablesr_training import assert_killed_run_resumes_exactly, run, weights  # (root, ...) projects'

TINY_D = {'type': 'PatchGANDiscriminator', 'num_in_ch': 3, 'num_feat': 8, 'num_layers': 2}


def test_the_patchgan_has_pix2pix_size_and_sees_70_pixel_patches():
    net = PatchGANDiscriminator().eval()
    assert sum(p.numel() for p in net.parameters()) == 2_765_633  # pix2pix's 3-layer PatchGAN: 2.765 M
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        logits = net(x)
        assert logits.shape == (1, 1, 14, 14)
        seen = []
        for k in (46, 47):  # the first logit's 70-pixel field starts 23 pixels before the image (5 paddings)
            changed = x.clone()
            changed[..., k, k] += 10
            seen.append(bool((net(changed) - logits)[0, 0, 0, 0].abs() > 0))
    assert seen == [True, False]


def test_the_lpips_loss_is_lpips_on_images_in_minus_one_one_and_reaches_the_images():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32)
    loss = LPIPSLoss(loss_weight=0.5, net='alex', random_trunk=True)(x, y)
    expected = 0.5 * lpips_network('alex', 'cpu', True)(x.detach() * 2 - 1, y * 2 - 1).mean()
    assert torch.allclose(loss.detach(), expected, rtol=1e-6)
    loss.backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(OptionsError, match=r'LPIPSLoss: images of \(16, 32\) pixels are too small'):
        LPIPSLoss(net='alex', random_trunk=True)(x[..., :16, :], y[..., :16, :])


def write_triplets(root, count=3, size=32, factor=8, channels=4):
    """A CFW dataset whose latents are the HR's average over each latent pixel (so a crop's alignment shows)."""
    for folder in ('inputs', 'gts', 'latents'):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(root / 'gts' / f'{i}.png'), gt)
        cv2.imwrite(str(root / 'inputs' / f'{i}.png'), 255 - gt)
        rgb = torch.from_numpy(gt[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)
        latent = torch.cat([rgb, rgb.mean(0, keepdim=True)])[:channels]
        np.save(root / 'latents' / f'{i}.npy', F.avg_pool2d(latent[None], factor).numpy())
    return root


def test_the_dataset_crops_images_and_latent_at_the_same_place_and_names_bad_files(tmp_path):
    root = write_triplets(tmp_path / 'cfw')
    dataset = CFWLatentDataset({'name': 'cfw', 'dataroot': str(root), 'gt_size': 16})
    assert len(dataset) == 3
    crops = set()
    for _ in range(6):
        item = dataset[1]
        assert item['gt'].shape == item['lq'].shape == (3, 16, 16) and item['latent'].shape == (4, 2, 2)
        assert torch.allclose(F.avg_pool2d(item['gt'][None], 8)[0], item['latent'][:3], atol=1e-6)
        assert torch.allclose(item['lq'], 1 - item['gt'], atol=1e-6)
        crops.add(item['latent'].sum().item())
    assert len(crops) > 1  # the crop moves
    with pytest.raises(DatasetError, match='multiple of latent_factor 8'):
        CFWLatentDataset({'name': 'cfw', 'dataroot': str(root), 'gt_size': 12})
    os.remove(root / 'inputs' / '2.png')
    with pytest.raises(DatasetError, match=r'1 image\(s\) not in all of inputs, gts, latents: 2'):
        CFWLatentDataset({'name': 'cfw', 'dataroot': str(root)})
    np.save(root / 'latents' / '0.npy', np.zeros((1, 3, 3, 4), np.float32))
    os.remove(root / 'latents' / '2.npy')
    os.remove(root / 'gts' / '2.png')
    with pytest.raises(DatasetError, match=r'0\.npy \(3, 3, 4\): the images must be the same size'):
        CFWLatentDataset({'name': 'cfw', 'dataroot': str(root)})[0]


@pytest.fixture(scope='module')
def stage_one(stablesr_nets):
    unet, encoder, vae = stablesr_nets
    return SRDiffPipeline(encoder, unet, DiscreteSchedule.from_options('scaled_linear'), 4,
                          space=VAELatentSpace(vae, 4), condition=TimeAwareCondition,
                          sampler={'type': 'ddpm_spaced', 'steps': 2}, precision='fp32')


def test_the_lr_start_is_the_lr_latent_noised_to_the_last_step(stage_one):
    """start='lr' (StableSR's tiled script and data generation): x_T = sqrt(a_999) z_lr + sqrt(1 - a_999) eps with
    SD's schedule computed here, the generator's draws in order (posterior, x_T's eps, the steps')."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64)**2
    alpha_bar = float(np.cumprod(1 - betas)[-1])
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert stage_one._pad(lr) == (0, 0)
    x0, reference, _ = stage_one.sample_space(lr, seed=5, start='lr')
    generator, shape = torch.Generator().manual_seed(5), reference.latent.shape
    posterior, eps, *steps = (torch.randn(shape, generator=generator) for _ in range(5))
    lr_latent = stage_one.space.reference(lr, lambda _: posterior).latent
    x_T = alpha_bar**0.5 * lr_latent + (1 - alpha_bar)**0.5 * eps
    expected, _, _ = stage_one.sample_space(lr, generator=Replay([posterior, *steps]), start=(x_T, 999))
    assert torch.allclose(x0, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(stage_one.sample_space(lr, seed=5)[0], x0, atol=1e-3)  # pure noise differs


def test_generated_data_are_the_first_stages_samples_and_a_rerun_keeps_them(tmp_path, stage_one):
    lr_dir, hr_dir = make_pairs(tmp_path / 'pairs', count=2, hr_size=32)
    out = tmp_path / 'cfw'
    assert generate_cfw_data(stage_one, matched_pairs(lr_dir, hr_dir), str(out), seed=3) == ['000', '001']
    lr = torch.from_numpy(cv2.imread(os.path.join(lr_dir, '001.png'))[..., ::-1].astype(np.float32) / 255)
    x0, reference, _ = stage_one.sample_space(lr.permute(2, 0, 1)[None].contiguous(), seed=3, start='lr')
    latent = np.load(out / 'latents' / '001.npy')
    assert latent.shape == (1, 4, 4, 4) and np.allclose(latent, x0[..., :4, :4].numpy(), atol=1e-6)
    stored_lr_up = cv2.imread(str(out / 'inputs' / '001.png'))[..., ::-1].astype(np.float32) / 255
    lr_up = reference.lr_up[0, :, :32, :32].permute(1, 2, 0).numpy()
    assert np.abs(stored_lr_up - lr_up).max() <= 0.5 / 255 + 1e-6
    assert np.array_equal(cv2.imread(str(out / 'gts' / '000.png')), cv2.imread(os.path.join(hr_dir, '000.png')))
    os.remove(out / 'latents' / '001.npy')
    assert generate_cfw_data(stage_one, matched_pairs(lr_dir, hr_dir), str(out), seed=3) == ['001']
    os.remove(os.path.join(lr_dir, '000.png'))
    with pytest.raises(DatasetError, match=r'not in both: 000'):
        matched_pairs(lr_dir, hr_dir)


def test_generating_data_with_a_pixel_model_is_refused(tmp_path, stage_one):
    class PixelModel:
        space, unet = object(), torch.nn.Identity()
    with pytest.raises(OptionsError, match='Identity model has no latent space'):
        generate_cfw_data(PixelModel(), [], str(tmp_path))


@pytest.fixture(scope='module')
def project(tmp_path_factory, stablesr_golden):
    root = tmp_path_factory.mktemp('cfw')
    data = write_triplets(root / 'data', count=4, size=32)
    network_vae = network_options(tiny_config(stablesr_golden))['network_vae']
    torch.manual_seed(0)
    vae = build_arch(dict(network_vae))
    plain = {k: v for k, v in vae.state_dict().items() if not k.startswith('fusion.')}
    torch.save({'params': plain}, root / 'vae.pth')  # SD's VAE: no fusion layers yet
    save_basicsr_weights(build_arch(dict(TINY_D)), root / 'd.pth')
    return root, data, network_vae, str(root / 'vae.pth')


def options(project, name, disc_start=1, total_iter=4, is_train=True):
    root, data, network_vae, vae = project
    dataset = dict(type='CFWLatentDataset', dataroot=str(data), latent_factor=8)
    opt = dict(name=name, model_type='CFWModel', scale=4, num_gpu=0, manual_seed=0,
               network_g=dict(network_vae), network_d=dict(TINY_D),
               path=dict(pretrain_network_g=vae, strict_load_g=False, pretrain_network_d=str(root / 'd.pth'),
                         resume_state=None),
               val=dict(save_img=True, fidelity=0.5,
                        metrics=dict(psnr=dict(type='calculate_psnr', crop_border=0, test_y_channel=False))))
    if is_train:
        opt.update(
            datasets=dict(train=dict(dataset, name='train', phase='train', gt_size=32, batch_size_per_gpu=2,
                                     num_worker_per_gpu=0, dataset_enlarge_ratio=1, prefetch_mode=None),
                          val=dict(dataset, name='val', phase='val')),
            train=dict(optim_g=dict(type='Adam', lr=1e-3, betas=[0.5, 0.9]),
                       optim_d=dict(type='Adam', lr=1e-3, betas=[0.5, 0.9]),
                       scheduler=dict(type='MultiStepLR', milestones=[100], gamma=0.5),
                       pixel_opt=dict(type='L1Loss', loss_weight=2.0),
                       perceptual_opt=dict(type='LPIPSLoss', net='alex', random_trunk=True, loss_weight=1.0),
                       gan_opt=dict(type='GANLoss', gan_type='hinge', loss_weight=0.025),
                       disc_start=disc_start, total_iter=total_iter, warmup_iter=-1),
            logger=dict(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False))
        opt['val']['val_freq'] = 4
    else:
        opt['datasets'] = dict(test_1=dict(dataset, name='cfw_test', phase='test'))
    return write_options(root / f'{name}.yml', opt)


def test_the_cfw_stage_trains_the_fusion_layers_resumes_exactly_and_tests(project):
    result = run(project, '-m', 'srdiff_basicsr.train', '-opt', options(project, 'whole'))
    assert result.returncode == 0, result.stderr[-3000:]
    initial = torch.load(project[3], weights_only=True)['params']
    trained = weights(project, 'whole', 'net_g')
    assert all(torch.equal(trained[k], v) for k, v in initial.items())  # the VAE frozen
    fusion = [k for k in trained if k.startswith('fusion.')]
    assert fusion and len(trained) == len(initial) + len(fusion)
    assert re.search(r'l_g_gan: [-\d.e+]+ .*l_d: [\d.e+-]+', result.stderr)
    assert re.search(r'# psnr: [\d.]+', result.stderr)

    assert_killed_run_resumes_exactly(project, options(project, 'killed'), ('net_g', 'net_d'))

    test_file = options(project, 'cfw_test', is_train=False)
    test_opt = __import__('yaml').safe_load(open(test_file))
    test_opt['path'] = dict(pretrain_network_g=project[3], strict_load_g=False)  # no fusion layers: refused
    untrained = run(project, '-m', 'basicsr.test', '-opt', write_options(test_file, test_opt))
    assert untrained.returncode != 0 and 'missing in the file: fusion.' in untrained.stderr
    test_opt['path'] = dict(pretrain_network_g=str(project[0] / 'experiments' / 'whole' / 'models' /
                                                   'net_g_latest.pth'))
    tested = run(project, '-m', 'basicsr.test', '-opt', write_options(test_file, test_opt))
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert len(list((project[0] / 'results' / 'cfw_test' / 'visualization' / 'cfw_test').glob('*.png'))) == 4


def test_the_discriminator_learns_only_from_disc_start(project):
    """Before disc_start the GAN terms are zero: the discriminator's convolutions do not move (its optimizer
    steps on zero gradients, as the official's); from it they do."""
    result = run(project, '-m', 'srdiff_basicsr.train', '-opt', options(project, 'late', disc_start=2, total_iter=2))
    assert result.returncode == 0, result.stderr[-3000:]
    initial = torch.load(project[0] / 'd.pth', weights_only=True)['params']
    convs = [k for k, v in initial.items() if v.dim() == 4]
    late, early = weights(project, 'late', 'net_d'), weights(project, 'whole', 'net_d')  # whole: from iteration 2
    assert all(torch.equal(late[k], initial[k]) for k in convs)
    assert not any(torch.equal(early[k], initial[k]) for k in convs)
    assert re.search(r'l_g_gan: 0\.0000e\+00', result.stderr)


@pytest.mark.parametrize('change, message', [
    (lambda opt: opt.pop('network_d'), 'network_d: must be a network section with a type'),
    (lambda opt: opt['train'].pop('gan_opt'), 'train.gan_opt: must be a section with a type'),
    (lambda opt: opt['train'].update(disc_start=-1), 'train.disc_start: must be an integer >= 0'),
    (lambda opt: opt['val'].update(fidelity=2), r'val.fidelity: must be a number in \[0, 1\]'),
    (lambda opt: opt['train']['optim_d'].update(type='AdamX'), "train.optim_d.type: no optimizer named 'AdamX'"),
    (lambda opt: opt['path'].update(pretrain_network_g='cfw.pth'), r'path.pretrain_network_g: no file cfw.pth; '
                                                                   r"convert StableSR's released"),
])
def test_cfw_options_are_checked_before_anything_is_built(project, change, message):
    import yaml

    import srdiff_basicsr.plugin  # noqa: F401  (the registries the check reads)
    from srdiff_basicsr.models.run_checks import check_run_options
    opt = yaml.safe_load(open(options(project, 'checked')))
    opt['is_train'] = True
    check_run_options(opt)
    change(opt)
    with pytest.raises(OptionsError, match=message):
        check_run_options(opt)

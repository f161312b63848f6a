"""The option files users run: valid YAML for BasicSR, networks of the paper's sizes."""
import copy

import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.options import ordered_yaml

from srdiff_basicsr.errors import TileError
from srdiff_basicsr.models.evaluation import describe_protocol
from srdiff_basicsr.models.options import check_options, complete_options
from tests.conftest import REPO

OPTION_FILES = sorted((REPO / 'options').glob('*.yml'))


def load(path):
    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    opt['is_train'] = 'train' in opt  # as basicsr.train / basicsr.test set it
    return opt


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_all_option_files_named_by_the_issue_exist():
    names = {p.name for p in OPTION_FILES}
    assert {'train_srdiff_realesrgan_x4.yml', 'train_ecdp_realesrgan_x4.yml', 'train_rrdb_realesrgan_x4.yml',
            'demo_srdiff_realesrgan_x4.yml'} <= names
    assert {'train_rrdb_celeba_x8.yml', 'train_srdiff_celeba.yml', 'train_rrdb_div2k_x4.yml', 'train_srdiff_div2k.yml',
            'test_srdiff_celeba.yml', 'test_srdiff_div2k.yml', 'train_sradm_celeba.yml', 'train_sradm_div2k.yml',
            'test_sradm_celeba.yml', 'test_sradm_div2k.yml'} <= names


@pytest.mark.parametrize('path', OPTION_FILES, ids=lambda p: p.name)
def test_option_file_builds_its_networks(path, monkeypatch, tmp_path):
    opt = load(path)
    assert opt['name'] and opt['model_type'] in ('SRModel', 'DegradedSRModel', 'SRDiffModel', 'StableSRModel',
                                                 'CFWModel')
    if opt.get('degradation'):
        check_realesrgan_files(opt, tmp_path)
    if opt['model_type'] == 'CFWModel':  # StableSR's second stage: the released CFW VAE and a pix2pix PatchGAN
        with torch.device('meta'):
            assert n_params(build_network(copy.deepcopy(opt['network_g']))) == 128_047_591
            assert n_params(build_network(copy.deepcopy(opt['network_d']))) == 2_765_633
        assert opt['train']['disc_start'] == 501 and opt['train']['gan_opt']['loss_weight'] == 0.025
        return
    objective = (opt.get('train') or {}).get('objective', {}).get('type')
    if objective == 'image_quality':  # ECDP's VGG19 weights cannot be had here: a stand-in file
        from srdiff_basicsr.models import image_quality
        (tmp_path / 'vgg19.pth').touch()
        monkeypatch.setattr(image_quality, 'vgg_weight_files', lambda vgg_type: ([str(tmp_path / 'vgg19.pth')], ''))
    if objective == 'distillation':  # the networks of the teacher's options file; a stand-in folder of it
        teacher_opt = load(REPO / 'options' / TEACHER_OPTIONS[opt['train']['objective']['teacher']])
        for section in ('scale', 'network_g', 'network_encoder', 'diffusion'):
            teacher_section = teacher_opt[section]
            if section == 'diffusion':  # the student predicts v, its teacher eps
                teacher_section = {**teacher_section, 'parametrization': 'v'}
            assert opt[section] == teacher_section, section
        teacher = tmp_path / 'teacher'
        teacher.mkdir()
        (teacher / 'network_options.yml').write_text(
            (REPO / 'options' / TEACHER_OPTIONS[opt['train']['objective']['teacher']]).read_text())
        for name in ('net_g_official.pth', 'net_encoder_official.pth'):
            (teacher / name).touch()
        opt['train']['objective']['teacher'] = str(teacher)
    if opt['model_type'] not in ('SRModel', 'DegradedSRModel'):
        complete_options(opt)
        completed = copy.deepcopy(opt)
        check_options(opt)
        assert opt == completed  # checking changes nothing: the defaults come from complete_options
        if opt.get('is_train'):
            assert opt['train']['pixel_opt']['type'] in ('L1Loss', 'MSELoss')
        if opt['model_type'] == 'StableSRModel':  # the released sizes (1.1 G parameters): on the meta device
            with torch.device('meta'):
                nets = {s: build_network(copy.deepcopy(opt[s]))
                        for s in ('network_g', 'network_encoder', 'network_vae')}
            vae = 128_047_591 if opt['network_vae'].get('cfw', True) else 83_653_863  # SD 2.1's VAE: no CFW yet
            assert sum(n_params(net) for net in nets.values()) == 918_930_884 + 52_494_080 + vae
            assert opt.get('is_train') is False or opt['train']['optim_g']['type'] == 'AdamW'
        else:
            for section in ('network_g', 'network_encoder'):
                build_network(copy.deepcopy(opt[section]))
    else:
        net = build_network(copy.deepcopy(opt['network_g']))
        assert net.scale == opt['scale']


# Real-ESRGAN's options/train_realesrnet_x4plus.yml: its dataset's kernel settings
REALESRNET_KERNELS = dict(
    blur_kernel_size=21, kernel_list=['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso',
                                      'plateau_aniso'],
    kernel_prob=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob=0.1, blur_sigma=[0.2, 3], betag_range=[0.5, 4],
    betap_range=[1, 2], blur_kernel_size2=21, kernel_list2=['iso', 'aniso', 'generalized_iso', 'generalized_aniso',
                                                            'plateau_iso', 'plateau_aniso'],
    kernel_prob2=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob2=0.1, blur_sigma2=[0.2, 1.5], betag_range2=[0.5, 4],
    betap_range2=[1, 2], final_sinc_prob=0.8, use_hflip=True, use_rot=False)


# StableSR's (configs/stableSRNew/v2-finetune_text_T_512.yaml): milder kernels and degradations than Real-ESRGAN's;
# blur_kernel_size2 21, not its 11: BasicSR's RealESRGANDataset pads every kernel to 21 (a named difference)
STABLESR_KERNELS = dict(REALESRNET_KERNELS, blur_sigma=[0.2, 1.5], betag_range=[0.5, 2.0], betap_range=[1, 1.5],
                        blur_kernel_size2=21, blur_sigma2=[0.2, 1.0], betag_range2=[0.5, 2.0], betap_range2=[1, 1.5])
STABLESR_DEGRADATION = dict(
    resize_prob=[0.2, 0.7, 0.1], resize_range=[0.3, 1.5], gaussian_noise_prob=0.5, noise_range=[1, 15],
    poisson_scale_range=[0.05, 2.0], gray_noise_prob=0.4, jpeg_range=[60, 95], second_blur_prob=0.5,
    resize_prob2=[0.3, 0.4, 0.3], resize_range2=[0.6, 1.2], gaussian_noise_prob2=0.5, noise_range2=[1, 12],
    poisson_scale_range2=[0.05, 1.0], gray_noise_prob2=0.4, jpeg_range2=[60, 100], gt_usm=True, queue_size=180)


def check_realesrgan_files(opt, tmp_path):
    """A degradation file: Real-ESRGAN's kernels (StableSR's stage 1: StableSR's); its degradation in range; the
    full-size files keep every degradation default (Real-ESRGAN's) but the patch size and the pool (a multiple of
    their batch); StableSR's stage 1 has StableSR's values, accumulated to its batch of 24 per step."""
    from srdiff_basicsr.data.degradation import check_degradation
    from srdiff_basicsr.data.realesrgan_degradation import REALESRGAN_DEFAULTS
    train = opt['datasets']['train']
    stablesr = opt['model_type'] == 'StableSRModel'
    kernels = STABLESR_KERNELS if stablesr else REALESRNET_KERNELS
    assert {key: train[key] for key in kernels} == kernels
    if stablesr:
        degradation = {**REALESRGAN_DEFAULTS, **opt['degradation']}
        assert {key: degradation[key] for key in STABLESR_DEGRADATION} == STABLESR_DEGRADATION
        assert train['batch_size_per_gpu'] * opt['train']['accumulate_grad_batches'] == 24
        assert opt['train']['precision'] == 'fp32' and opt['diffusion']['lr_up'] == 'bicubic'
    (tmp_path / 'meta_info.txt').write_text('x.png\n')
    check_degradation({**opt, 'datasets': {'train': {**train, 'meta_info': str(tmp_path / 'meta_info.txt')}}},
                      model_has_stage=True)
    if not opt['name'].startswith('demo') and not stablesr:
        assert set(opt['degradation']) == {'type', 'gt_size', 'queue_size'}
        assert train['meta_info'] == 'datasets/DF2K/meta_info/meta_info_DF2Kmultiscale+OST_sub.txt'


TEACHER_OPTIONS = {'experiments/demo_srdiff_x4': 'demo_srdiff_x4.yml',
                   'experiments/train_srdiff_celeba_x8': 'train_srdiff_celeba.yml',
                   'experiments/train_srdiff_div2k_x4': 'train_srdiff_div2k.yml'}


@pytest.mark.parametrize('name,official_params', [('train_srdiff_celeba.yml', 12_033_798),
                                                  ('train_srdiff_div2k.yml', 13_234_022)])
def test_paper_configurations_have_the_official_sizes(name, official_params):
    """Totals stated in shared/reference/official_state_dict_keys.txt for the released checkpoints."""
    opt = load(REPO / 'options' / name)
    check_options(complete_options(opt))
    total = sum(n_params(build_network(copy.deepcopy(opt[s]))) for s in ('network_g', 'network_encoder'))
    assert total == official_params


@pytest.mark.parametrize('name', ['test_srdiff_celeba.yml', 'test_srdiff_div2k.yml', 'test_sradm_celeba.yml',
                                  'test_sradm_div2k.yml', 'test_ecdp_celeba.yml', 'test_ecdp_div2k.yml',
                                  'demo_test_srdiff_x4.yml', 'demo_test_srdiff_realesrgan_x4.yml',
                                  'demo_test_srdiff_bicubic_on_realesrgan_x4.yml', 'test_stablesr.yml'])
def test_test_option_files_measure_rgb_as_the_paper_and_y_with_the_scale_cropped(name):
    opt = load(REPO / 'options' / name)
    metrics, scale = opt['val']['metrics'], opt['scale']
    described = describe_protocol(metrics, scale)
    assert described.startswith('psnr, ssim') and 'RGB, no border crop' in described
    assert f'psnr_y, ssim_y, niqe: Y channel, border crop {scale}' in described
    assert 'protocol' not in opt['val']  # it would set the Y columns' options to the RGB ones
    assert metrics.get('lr_psnr', {'scale': scale})['scale'] == scale


@pytest.mark.parametrize('kind', ['train', 'test'])
@pytest.mark.parametrize('data', ['celeba', 'div2k'])
def test_sradm_files_are_the_srdiff_files_with_window_attention(kind, data):
    sradm = load(REPO / 'options' / f'{kind}_sradm_{data}.yml')
    srdiff = load(REPO / 'options' / f'{kind}_srdiff_{data}.yml')
    window = {key: sradm['network_g'].pop(key) for key in list(sradm['network_g']) if key.startswith('window_')}
    assert window == {'window_attn_levels': [2, 3], 'window_attn_mid': True, 'window_size': 10, 'window_heads': 4}
    assert sradm['network_g'] == srdiff['network_g']
    for section in set(sradm) | set(srdiff):
        if section not in ('name', 'path'):
            assert sradm.get(section) == srdiff.get(section), section


def test_a_latent_models_validation_tiles_are_checked_in_output_pixels_on_its_latent():
    """val.tile of StableSR: multiples of the VAE's 8 output pixels per latent pixel (the pipeline's rule)."""
    opt = complete_options(load(REPO / 'options' / 'test_stablesr.yml'))
    opt['val']['tile'] = {'size': 36, 'overlap': 16}
    with pytest.raises(TileError, match=r'val.tile.size: must be a multiple of 8 \(output pixels per latent pixel\)'):
        check_options(opt)
    opt['val']['tile'] = {'size': 40, 'overlap': 16}  # 5 latent pixels: not a multiple of the U-Net's 8
    with pytest.raises(TileError, match=r'val.tile \(in latent pixels\).size: must be a positive multiple of 8'):
        check_options(opt)

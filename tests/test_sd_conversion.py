"""Stable Diffusion 2.x-base in diffusers' folder format -> StableSR's first-stage start: our networks loaded from
the converted weights compute what diffusers' UNet2DConditionModel and AutoencoderKL and transformers'
CLIPTextModel compute (tiny random models saved as a diffusers folder), the SPADEs left to be trained."""
import json

import pytest
import torch

from srdiff_basicsr.archs.arch_options import build_arch
from srdiff_basicsr.conversion.diffusers_sd import convert_sd_folder
from srdiff_basicsr.errors import WeightsError

SCHEDULER = {'_class_name': 'DDIMScheduler', 'beta_schedule': 'scaled_linear', 'beta_start': 0.00085,
             'beta_end': 0.012, 'num_train_timesteps': 1000, 'prediction_type': 'epsilon'}


def tiny_sd_folder(root):
    """A diffusers folder with SD 2.x's layout at tiny sizes (random weights, perturbed so no layer is zero)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64, 64, 64),
        down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'),
        up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'),
        cross_attention_dim=32, attention_head_dim=(2, 4, 4, 4), use_linear_projection=True, norm_num_groups=32)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=('DownEncoderBlock2D', ) * 3,
                        up_block_types=('UpDecoderBlock2D', ) * 3, block_out_channels=(32, 32, 64),
                        layers_per_block=1, latent_channels=4, norm_num_groups=32)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=2, max_position_embeddings=77, hidden_act='gelu'))
    for model in (unet, vae, text):
        for p in model.parameters():
            p.data.add_(torch.randn_like(p) * 0.05)
    unet.save_pretrained(root / 'unet')
    vae.save_pretrained(root / 'vae')
    text.save_pretrained(root / 'text_encoder')
    (root / 'scheduler').mkdir()
    (root / 'scheduler' / 'scheduler_config.json').write_text(json.dumps(SCHEDULER))
    return unet.eval(), vae.eval(), text.eval()


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp('sd21')
    return root, tiny_sd_folder(root), convert_sd_folder(str(root))


def test_the_unet_computes_diffusers_unet_once_its_spades_are_off(converted):
    _, (reference, _, _), (state_dicts, options) = converted
    unet = build_arch(dict(options['network_g'])).eval()
    missing, unexpected = unet.load_state_dict(state_dicts['g'], strict=False)
    assert unexpected == [] and missing and all('.spade.' in k for k in missing)  # the SPADEs: to be trained
    for module in unet.modules():
        if hasattr(module, 'spade'):
            module.spade = None  # SD's own residual block
    torch.manual_seed(1)
    x, t, context = torch.randn(2, 4, 16, 16), torch.tensor([3, 870]), torch.randn(2, 77, 32)
    with torch.no_grad():
        ours, theirs = unet(x, t, (context, None)), reference(x, t, encoder_hidden_states=context).sample
    assert theirs.abs().mean() > 1e-3 and torch.allclose(ours, theirs, rtol=0, atol=1e-5)


def test_the_vae_is_diffusers_vae_and_the_empty_prompt_is_clips_output(converted):
    _, (_, reference_vae, text), (state_dicts, options) = converted
    assert options['network_vae']['cfw'] is False
    vae = build_arch(dict(options['network_vae'])).eval()
    vae.load_state_dict(state_dicts['vae'])
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        (mean, logvar), _ = vae.encode(image)
        posterior = reference_vae.encode(image).latent_dist
        assert torch.allclose(mean, posterior.mean, atol=1e-5) and torch.allclose(logvar, posterior.logvar, atol=1e-5)
        assert torch.allclose(vae.decode(mean), reference_vae.decode(mean).sample, atol=1e-5)
        tokens = torch.tensor([[49406, 49407] + [0] * 75])  # '' as SD 2's tokenizer pads it
        expected = text(tokens).last_hidden_state  # what diffusers' SD 2 pipelines condition on
    assert torch.allclose(state_dicts['g']['empty_context'], expected, atol=1e-5)


def test_a_v_prediction_folder_and_a_missing_component_are_refused(converted, tmp_path):
    root = converted[0]
    (root / 'scheduler' / 'scheduler_config.json').write_text(json.dumps({**SCHEDULER,
                                                                           'prediction_type': 'v_prediction'}))
    try:
        with pytest.raises(WeightsError, match="'prediction_type': 'v_prediction'.*only SD 2.x-base"):
            convert_sd_folder(str(root))
    finally:
        (root / 'scheduler' / 'scheduler_config.json').write_text(json.dumps(SCHEDULER))
    (tmp_path / 'scheduler').mkdir()
    (tmp_path / 'scheduler' / 'scheduler_config.json').write_text(json.dumps(SCHEDULER))
    with pytest.raises(WeightsError, match=r'unet/config.json: cannot be read'):
        convert_sd_folder(str(tmp_path))


def test_the_script_writes_a_stage_one_start_whose_unet_lacks_only_the_spades(converted, tmp_path, capsys):
    from srdiff_basicsr.loading.weights import load_weights
    from tests.conftest import load_script
    script = load_script('convert_sd_diffusers.py')
    script.main([str(converted[0]), '--out', str(tmp_path / 'sd'), '--format', 'safetensors'])
    assert sorted(p.name for p in (tmp_path / 'sd').iterdir()) == ['model.yml', 'net_g_official.safetensors',
                                                                   'net_vae_official.safetensors']
    from srdiff_basicsr.pipeline import SRDiffPipeline
    with pytest.raises(WeightsError, match=r'model.yml: no weights for network_encoder: not a model that samples'):
        SRDiffPipeline.from_pretrained(str(tmp_path / 'sd'))  # a start for training: no time-aware encoder yet
    options = converted[2][1]
    unet = build_arch(dict(options['network_g']))
    spade_only = lambda key: '.spade.' in key  # noqa: E731  (what StableSRModel's training loader allows)
    initialised = load_weights(unet, str(tmp_path / 'sd' / 'net_g_official.safetensors'), may_miss=spade_only)
    assert initialised and all('.spade.' in k for k in initialised)
    with pytest.raises(WeightsError, match=r'missing in the file: .*spade'):  # testing: never untrained SPADEs
        load_weights(unet, str(tmp_path / 'sd' / 'net_g_official.safetensors'))
    with pytest.raises(WeightsError, match=r'missing in the file: input_blocks.0.0.bias'):
        from srdiff_basicsr.loading.weights import write_state_dict
        cut = {k: v for k, v in converted[2][0]['g'].items() if k != 'input_blocks.0.0.bias'}
        write_state_dict(cut, str(tmp_path / 'cut.safetensors'))
        load_weights(unet, str(tmp_path / 'cut.safetensors'), may_miss=spade_only)
    vae = build_arch(dict(options['network_vae'])).eval()
    vae.load_state_dict(converted[2][0]['vae'])
    z = torch.randn(1, 4, 4, 4)
    (_, _), features = vae.encode(torch.rand(1, 3, 32, 32))
    with torch.no_grad():
        assert torch.equal(vae.decode(z, features, 0.5), vae.decode(z))  # no CFW: the features are not fused

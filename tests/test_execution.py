"""Execution options: what ``precision: auto`` picks on each kind of device, and that every entry point (the
pipeline, training, validation, srdiff-infer) uses it by default while weights and their state stay float32."""
import os

import pytest
import torch
from basicsr.archs import build_network

from srdiff_basicsr import execution
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.execution import check_precision, compiled, cpu_flags, native_bf16, resolve_execution
from srdiff_basicsr.pipeline import SRDiffPipeline
from tests.conftest import TINY_ENCODER, TINY_UNET, save_basicsr_weights
from tests.test_model import batch, make_model


@pytest.fixture
def encoder_path(tmp_path):
    torch.manual_seed(0)
    return save_basicsr_weights(build_network(dict(TINY_ENCODER, scale=4)), tmp_path / 'encoder.pth')


def bf16_device(monkeypatch, native):
    """This machine seen as one that computes bf16 natively (or not), with auto's own choice (conftest pins it)."""
    monkeypatch.setattr(execution, 'native_bf16', lambda device: native)
    monkeypatch.delenv(execution.AUTO_EXECUTION_ENV, raising=False)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\nbogomips\t: 5600\n')
    assert cpu_flags(str(cpuinfo)) == {'fpu', 'sse2', 'avx512f', 'amx_bf16', 'amx_tile'}
    assert cpu_flags(str(tmp_path / 'missing')) == set()  # not Linux: no flags, so no native bf16


@pytest.mark.parametrize('flags, native', [({'avx512f', 'avx512_bf16'}, True), ({'amx_bf16'}, True),
                                           ({'avx512f', 'avx2', 'fma'}, False), (set(), False)])
def test_a_cpu_has_native_bf16_with_avx512_bf16_or_amx(monkeypatch, flags, native):
    monkeypatch.setattr(execution, 'cpu_flags', lambda: flags)
    assert native_bf16('cpu') is native
    assert native_bf16('meta') is False


@pytest.mark.parametrize('native, precision, channels_last, expected', [
    (True, 'auto', None, ('bf16', True)),      # the fast path, both halves
    (True, 'auto', False, ('bf16', False)),    # channels_last turned off by the user
    (False, 'auto', None, ('fp32', True)),     # emulated bf16 is slower than fp32; channels_last: the same math
    (False, 'auto', False, ('fp32', False)),
    (True, 'fp32', None, ('fp32', False)),     # an explicit precision is kept as given
    (True, 'bf16', None, ('bf16', False)),
    (False, 'bf16', True, ('bf16', True)),
])
def test_auto_picks_bf16_only_where_it_is_native_and_channels_last_on_cpus(monkeypatch, native, precision,
                                                                            channels_last, expected):
    bf16_device(monkeypatch, native)
    assert resolve_execution(precision, channels_last, 'cpu') == expected


def test_auto_leaves_other_devices_contiguous_without_native_bf16(monkeypatch):
    bf16_device(monkeypatch, False)
    assert resolve_execution('auto', None, 'meta') == ('fp32', False)  # stands in for a GPU without bf16


@pytest.mark.parametrize('forced, expected', [('fp32', ('fp32', False)), ('bf16+channels_last', ('bf16', True)),
                                               ('fp32+channels_last', ('fp32', True))])
def test_the_environment_decides_what_auto_picks_on_any_device(monkeypatch, forced, expected):
    bf16_device(monkeypatch, native=forced == 'fp32')  # the opposite of what the machine would pick
    monkeypatch.setenv('SRDIFF_AUTO_EXECUTION', forced)
    assert resolve_execution('auto', None, 'cpu') == expected
    assert resolve_execution('auto', None, 'meta') == expected
    assert resolve_execution('fp32', None, 'cpu') == ('fp32', False)  # an explicit precision is kept


def test_a_bad_auto_execution_in_the_environment_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv('SRDIFF_AUTO_EXECUTION', 'bfloat16')
    with pytest.raises(OptionsError, match=r"SRDIFF_AUTO_EXECUTION='bfloat16': must be one of \['fp32', "):
        resolve_execution('auto', None, 'cpu')


def test_an_unknown_precision_names_the_option_and_the_choices():
    with pytest.raises(OptionsError, match=r"train.precision: must be one of \['auto', 'fp32', 'bf16', 'fp16'\]"):
        check_precision('half', 'cpu', 'train')


def tiny_pipeline(**kwargs):
    torch.manual_seed(0)
    unet = build_network(dict(TINY_UNET, scale=4, encoder_num_feat=8, encoder_num_block=2)).eval()
    encoder = build_network(dict(TINY_ENCODER, scale=4)).eval()
    return SRDiffPipeline.from_networks(encoder, unet, 4, {'timesteps': 10}, sampler={'type': 'ddim', 'steps': 3},
                                        **kwargs)


def test_the_pipeline_samples_in_bf16_by_default_where_it_is_native_and_exactly_elsewhere(monkeypatch):
    lr = torch.rand(1, 3, 6, 6)
    exact = tiny_pipeline(precision='fp32')
    assert (exact.precision, exact.channels_last) == ('fp32', False)
    reference = exact(lr, seed=0)
    bf16_device(monkeypatch, False)
    default = tiny_pipeline()
    assert default.describe_execution() == 'fp32, channels_last, on cpu'
    assert torch.allclose(default(lr, seed=0), reference, atol=1e-5)  # the same math in another memory layout
    bf16_device(monkeypatch, True)
    fast = tiny_pipeline()
    assert (fast.precision, fast.channels_last) == ('bf16', True)
    assert fast.describe_execution() == 'bf16 autocast, channels_last, on cpu'
    conv = lambda pipe: pipe.unet.final_conv[0].block[1].weight  # noqa: E731  (a 3x3 convolution's)
    assert conv(fast).is_contiguous(memory_format=torch.channels_last)
    assert not conv(exact).is_contiguous(memory_format=torch.channels_last)
    assert conv(fast).dtype == torch.float32  # autocast: the weights stay float32
    sample = fast(lr, seed=0)
    assert sample.dtype == torch.float32 and 0 < (sample - reference).abs().mean() < 0.01  # bf16 did run


def test_training_uses_auto_and_keeps_weights_optimizer_state_ema_and_checkpoints_float32(tmp_path, encoder_path,
                                                                                          monkeypatch):
    bf16_device(monkeypatch, True)
    model = make_model(tmp_path, encoder_path, train__ema_decay=0.5)
    assert model.train_precision == 'bf16' and model.train_channels_last
    assert model.pipeline.precision == 'bf16'  # validation too (val.precision: auto)
    seen = []  # the U-Net's input, channels_last as auto picks with bf16
    model.net_g.register_forward_pre_hook(lambda net, args: seen.append(
        args[0].is_contiguous(memory_format=torch.channels_last) and not args[0].is_contiguous()))
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert seen == [True]
    state = model.optimizers[0].state_dict()['state']
    assert state and all(v.dtype == torch.float32 for s in state.values() for k, v in s.items() if k != 'step')
    for net in (model.net_g, model.net_g_ema):
        assert all(p.dtype == torch.float32 for p in net.parameters())
    model.save_network(model.net_g, 'net_g', 1)
    saved = torch.load(tmp_path / 'models' / 'net_g_1.pth', weights_only=True)['params']
    assert {v.dtype for v in saved.values()} == {torch.float32}
    bf16_device(monkeypatch, False)
    assert make_model(tmp_path / 'cpu', encoder_path).train_precision == 'fp32'


def test_fp32_training_hands_the_network_a_contiguous_input_whatever_the_batch_layout(tmp_path, encoder_path):
    """A batch permuted from NHWC (channels_last strides, as torch.from_numpy(images).permute gives) must not switch
    the convolutions to their channels_last kernels: other round-off than the exact path."""
    model = make_model(tmp_path, encoder_path, train__precision='fp32')
    seen = []
    model.net_g.register_forward_pre_hook(lambda net, args: seen.append(args[0].is_contiguous()))
    data = batch()
    data = {key: value.contiguous(memory_format=torch.channels_last) if torch.is_tensor(value) else value
            for key, value in data.items()}
    assert not data['gt'].is_contiguous()
    model.feed_data(data)
    model.optimize_parameters(1)
    assert seen == [True]


def test_the_command_line_defaults_to_auto_and_takes_channels_last_both_ways():
    from srdiff_basicsr.infer import parser_for_super_resolution
    parser = parser_for_super_resolution()
    args = parser.parse_args(['in.png', '-o', 'out', '--model', 'm'])
    assert (args.precision, args.channels_last) == ('auto', None)
    assert parser.parse_args(['in.png', '-o', 'out', '--model', 'm', '--no-channels-last']).channels_last is False
    assert parser.parse_args(['in.png', '-o', 'out', '--model', 'm', '--channels-last']).channels_last is True


def test_compiled_kernels_are_cached_in_the_users_cache_unless_told_where(monkeypatch, tmp_path):
    monkeypatch.setattr(torch, 'compile', lambda module: ('compiled', module))
    monkeypatch.delenv('TORCHINDUCTOR_CACHE_DIR', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    assert compiled('net') == ('compiled', 'net')
    assert os.environ['TORCHINDUCTOR_CACHE_DIR'] == str(tmp_path / 'cache' / 'srdiff_basicsr' / 'torchinductor')
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', str(tmp_path / 'mine'))
    compiled('net')
    assert os.environ['TORCHINDUCTOR_CACHE_DIR'] == str(tmp_path / 'mine')

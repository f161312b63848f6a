"""``train.accumulate_grad_batches`` (StableSR's recipes; BasicSR has none): N batches of B take the optimizer step
of one batch of N x B, in the CFW stage (generator and discriminator) and in SRDiffModel; the options that cannot
work with it are refused."""
import copy

import pytest
import torch
import yaml
from basicsr.models import build_model
from basicsr.utils.registry import MODEL_REGISTRY
from torch.utils.data import default_collate

from srdiff_basicsr.data.cfw_latent_dataset import CFWLatentDataset
from srdiff_basicsr.errors import OptionsError
from srdiff_basicsr.models.accumulation import check_accumulation
from tests.conftest import srdiff_options, tiny_data_and_encoder
from tests.test_cfw_training import options as cfw_options
from tests.test_cfw_training import project  # noqa: F401  (the CFW project fixture)


# Adam whose eps dwarfs the gradients: its step is lr / eps x the gradient, so a wrong 1/N shows (a plain Adam's
# first step is the gradient's sign, whatever its scale); BasicSR's models build Adam only
LINEAR_ADAM = {'type': 'Adam', 'lr': 100.0, 'eps': 1000.0, 'betas': [0.5, 0.9]}


def in_process(opt, root, name):
    """A training model built as BasicSR's train script builds it, without its folders' side effects."""
    opt = copy.deepcopy(opt)
    opt.pop('datasets', None)
    torch.manual_seed(0)  # the same initial weights (the fusion layers start from their initialisation)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    opt['path'].update(models=str(root / name / 'models'), training_states=str(root / name / 'states'),
                       results_root=str(root / name), experiments_root=str(root / name))
    return build_model(opt)


def test_two_accumulated_batches_of_one_take_the_cfw_step_of_one_batch_of_two(project, tmp_path):  # noqa: F811
    data = project[1]
    opt = yaml.safe_load(open(cfw_options(project, 'accumulate', disc_start=0)))
    opt['train'].update(optim_g=LINEAR_ADAM, optim_d=LINEAR_ADAM)
    dataset = CFWLatentDataset({'name': 'cfw', 'dataroot': str(data), 'phase': 'train'})
    pair = default_collate([dataset[0], dataset[1]])
    ones = [default_collate([dataset[k]]) for k in (0, 1)]

    whole = in_process(opt, tmp_path, 'whole')
    opt['train'].update(accumulate_grad_batches=2, ema_decay=0.5)
    accumulated = in_process(opt, tmp_path, 'accumulated')
    for model in (whole, accumulated):
        model.net_d.eval()  # BatchNorm aside: per-sample statistics, the same in a batch of 2 and two of 1
    start_g, start_d = copy.deepcopy(whole.net_g.state_dict()), copy.deepcopy(whole.net_d.state_dict())
    assert all(torch.equal(v, accumulated.net_g.state_dict()[k]) for k, v in start_g.items())

    whole.feed_data(pair)
    whole.optimize_parameters(1)
    accumulated.feed_data(ones[0])
    accumulated.optimize_parameters(1)
    assert all(torch.equal(v, accumulated.net_g.state_dict()[k]) for k, v in start_g.items())  # no step yet
    assert all(torch.equal(v, accumulated.net_d.state_dict()[k]) for k, v in start_d.items())
    accumulated.feed_data(ones[1])
    accumulated.optimize_parameters(2)
    for net in ('net_g', 'net_d'):
        ours, theirs = getattr(accumulated, net).state_dict(), getattr(whole, net).state_dict()
        start = start_g if net == 'net_g' else start_d
        moved = [k for k in theirs if not torch.equal(theirs[k], start[k])]
        assert moved, net  # both networks stepped (the GAN counts from step 0 here)
        for key in moved:
            assert torch.allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6), (net, key)
    ema = copy.deepcopy(accumulated.net_g_ema.state_dict())
    accumulated.feed_data(ones[0])
    accumulated.optimize_parameters(3)  # the next step's first batch: the EMA waits for its step
    assert all(torch.equal(v, accumulated.net_g_ema.state_dict()[k]) for k, v in ema.items())


def test_srdiff_steps_every_n_batches_on_the_mean_of_their_gradients(tmp_path):
    lr_dir, hr_dir, encoder = tiny_data_and_encoder(tmp_path, hr_size=32)
    opt = srdiff_options('acc', lr_dir, hr_dir, encoder)
    opt['train']['optim_g'] = LINEAR_ADAM
    opt['train']['precision'] = 'fp32'
    batches = [{'lq': torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(k)),
                'gt': torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(10 + k))} for k in range(2)]
    reference = in_process(opt, tmp_path, 'reference')  # N = 1: each batch's own gradient, as BasicSR steps it
    grads = []
    for k, batch in enumerate(batches):
        reference.feed_data(batch)
        torch.manual_seed(100 + k)  # the step's draws (t, the noise)
        reference.optimizer_g.param_groups[0]['lr'] = 0.0  # gradients only
        reference.optimize_parameters(k + 1)
        grads.append({name: p.grad.clone() for name, p in reference.net_g.named_parameters()})
    opt['train'].update(accumulate_grad_batches=2, ema_decay=0.5)
    model = in_process(opt, tmp_path, 'accumulated')
    start = {name: p.detach().clone() for name, p in model.net_g.named_parameters()}
    ema = copy.deepcopy(model.net_g_ema.state_dict())
    for k, batch in enumerate(batches):
        model.feed_data(batch)
        torch.manual_seed(100 + k)
        model.optimize_parameters(k + 1)
        if k == 0:  # neither the weights nor their EMA move inside an optimizer step
            assert all(torch.equal(p, start[name]) for name, p in model.net_g.named_parameters())
            assert all(torch.equal(v, model.net_g_ema.state_dict()[key]) for key, v in ema.items())
    assert not all(torch.equal(v, model.net_g_ema.state_dict()[key]) for key, v in ema.items())
    stepped = copy.deepcopy(model.net_g_ema.state_dict())
    after_step = {name: p.detach().clone() for name, p in model.net_g.named_parameters()}
    model.feed_data(batches[0])
    model.optimize_parameters(3)  # the first batch of the next step: no update of the weights or of their EMA
    assert all(torch.equal(v, model.net_g_ema.state_dict()[key]) for key, v in stepped.items())
    assert all(torch.equal(p, after_step[name]) for name, p in model.net_g.named_parameters())
    for name, p in model.net_g.named_parameters():
        g = (grads[0][name] + grads[1][name]) / 2  # Adam's first step, in closed form
        m, v = (1 - 0.5) * g, (1 - 0.9) * g**2
        expected = start[name] - LINEAR_ADAM['lr'] * (m / 0.5) / ((v / 0.1).sqrt() + LINEAR_ADAM['eps'])
        assert torch.allclose(p, expected, rtol=1e-5, atol=1e-7), name


@pytest.mark.parametrize('model_type,train,logger,message', [
    ('SRDiffModel', dict(accumulate_grad_batches=0, total_iter=8), {}, r'must be an integer >= 1'),
    ('SRDiffModel', dict(accumulate_grad_batches=4, total_iter=10), {},
     r'train.total_iter: 10 is not a multiple of train.accumulate_grad_batches \(4\)'),
    ('CFWModel', dict(accumulate_grad_batches=8, total_iter=16), dict(save_checkpoint_freq=12),
     r'logger.save_checkpoint_freq: 12 is not a multiple'),
    ('DegradedSRModel', dict(accumulate_grad_batches=2, total_iter=8), {},
     r'train.accumulate_grad_batches: DegradedSRModel does not accumulate gradients'),
])
def test_accumulation_options_that_cannot_work_are_refused(model_type, train, logger, message):
    opt = {'is_train': True, 'train': train, 'logger': logger}
    with pytest.raises(OptionsError, match=message):
        check_accumulation(opt, MODEL_REGISTRY.get(model_type))
    check_accumulation({'is_train': True, 'train': {'total_iter': 10}}, MODEL_REGISTRY.get('DegradedSRModel'))

"""``train.accumulate_grad_batches: N``: N batches per optimizer step (Lightning's option, which StableSR's recipes
use; BasicSR has none). Each batch's loss is divided by N, so N batches of B take the step of one batch of N x B
for losses that are batch means (BatchNorm aside: it still normalises each batch of B). A BasicSR iteration stays
one batch: ``train.total_iter``, ``logger.save_checkpoint_freq`` and the scheduler count batches, and the first two
must be multiples of N, so that every checkpoint falls between optimizer steps (a resumed run then starts a cycle,
bit-exact); EMA updates follow the optimizer steps."""
from srdiff_basicsr.errors import OptionsError, is_int, require

OPTION = 'accumulate_grad_batches'


def check_accumulation(opt, model):
    """``train.accumulate_grad_batches`` of a run of ``model`` (a model class): only for a model that accumulates,
    with the frequencies that count batches multiples of it."""
    batches = (opt.get('train') or {}).get(OPTION)
    if batches is None or not opt.get('is_train'):
        return
    if not issubclass(model, GradientAccumulation):
        raise OptionsError(f'train.{OPTION}: {model.__name__} does not accumulate gradients; leave it out')
    require(batches, lambda v: is_int(v) and v >= 1, f'train.{OPTION}', 'an integer >= 1 (batches per step)')
    for where, value in (('train.total_iter', opt['train'].get('total_iter')),
                         ('logger.save_checkpoint_freq', (opt.get('logger') or {}).get('save_checkpoint_freq'))):
        if value is not None and int(value) % batches:
            raise OptionsError(f'{where}: {value} is not a multiple of train.{OPTION} ({batches}): a checkpoint '
                               'would fall inside an optimizer step, whose gradients it does not keep')


class GradientAccumulation:
    """Mixin of a BasicSR model with ``self.opt``: which batches start and end an optimizer step."""

    @property
    def accumulate(self):
        return self.opt['train'].get(OPTION, 1)

    def starts_step(self, current_iter):
        """Whether this batch (BasicSR's 1-based iteration) is the first of an optimizer step: zero the gradients."""
        return (current_iter - 1) % self.accumulate == 0

    def ends_step(self, current_iter):
        """Whether this batch is the last of an optimizer step: step, update the EMA."""
        return current_iter % self.accumulate == 0

    def steps_before(self, current_iter):
        """Optimizer steps taken before this batch (Lightning's ``global_step`` during it)."""
        return (current_iter - 1) // self.accumulate

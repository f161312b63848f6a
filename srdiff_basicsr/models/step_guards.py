"""What stands between a training step's backward and its optimizer step: ``train.grad_clip`` and the stop (or
skip, ``train.skip_nonfinite``) of a step whose loss or gradient is not finite."""
import torch
from basicsr.utils import get_root_logger

from srdiff_basicsr.errors import DivergenceError
from srdiff_basicsr.host import distributed


class GuardedStep:
    """Mixin of a BasicSR model with ``self.optimizers``, ``self.grad_clip`` (``train.grad_clip``) and
    ``self.skipped_steps``."""

    def _trained_parameters(self):
        """Every parameter some optimizer steps (the U-Net's, and a trained encoder's)."""
        return [p for optimizer in self.optimizers for group in optimizer.param_groups for p in group['params']]

    def _clip_gradients(self):
        """``train.grad_clip``: over the parameters of every optimizer. Returns the gradient norm before clipping
        (``norm`` only), for the log."""
        if not self.grad_clip:
            return {}
        (kind, limit), = self.grad_clip.items()
        if kind == 'value':
            torch.nn.utils.clip_grad_value_(self._trained_parameters(), limit)
            return {}
        return {'grad_norm': torch.nn.utils.clip_grad_norm_(self._trained_parameters(), limit).detach()}

    def _diverged(self, current_iter, loss):
        """A non-finite loss or gradient (on any rank) stops training, naming the iteration, before the step
        can spoil the weights; with ``train.skip_nonfinite`` the step is skipped and counted instead."""
        # the total gradient norm is finite iff every gradient is (or it overflows, at gradients of 1e19: diverged
        # too); one fused reduction, 7x cheaper than a finiteness check per parameter
        grads = [p.grad for p in self._trained_parameters() if p.grad is not None]
        finite = torch.isfinite(loss.detach()) & torch.isfinite(torch.nn.utils.get_total_norm(grads))
        if distributed.all_ranks_agree(bool(finite), self.device):
            return False
        what = 'loss' if not torch.isfinite(loss.detach()) else 'gradient'
        if not self.opt['train'].get('skip_nonfinite', False):
            raise DivergenceError(
                f'iteration {current_iter}: the noise {what} is not finite (the run diverged); the weights of this '
                'step were not updated and no checkpoint of it is written. Lower train.optim_g.lr (or add '
                'warm-up), resume from the last checkpoint with --auto_resume, or set train.skip_nonfinite: true '
                'to skip such steps')
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        self.skipped_steps += 1
        get_root_logger().warning(f'iteration {current_iter}: non-finite noise {what}, step skipped '
                                  f'({self.skipped_steps} so far)')
        self.log_dict = {'skipped_steps': float(self.skipped_steps)}
        return True

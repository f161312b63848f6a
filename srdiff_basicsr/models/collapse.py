"""Stopping a run whose network collapsed: its loss back at the loss of predicting zeros.

A diffusion U-Net that collapses (the demo's attention networks did without warm-up or pre-norm) outputs
~0 everywhere; its noise loss climbs back to the trivial level (E|eps| = 0.80 for L1 on eps) and stays
there while training goes on, finite and silent. The guard compares, per logged interval (BasicSR's
``logger.print_freq`` iterations), the mean loss with the mean loss of an all-zero output on the same
batches, and stops once the run, having dropped below ``level`` of that, is back above it for
``intervals`` intervals in a row.
"""
from srdiff_basicsr.errors import DivergenceError

COLLAPSE_DEFAULT = {'intervals': 3, 'level': 0.95}


class CollapseGuard:
    """``train.collapse: {intervals: 3, level: 0.95}`` (``~`` turns it off).

    Args:
        intervals (int): logged intervals in a row at the trivial level that stop the run.
        level (float): a loss at or above ``level`` x the trivial loss counts as the trivial level; below it
            the run has learnt something, which arms the guard.
        print_freq (int): iterations per logged interval.
    """

    def __init__(self, intervals, level, print_freq):
        self.intervals, self.level, self.print_freq = intervals, level, print_freq
        self.loss = self.trivial = 0.0
        self.armed, self.at_trivial = False, 0

    def __call__(self, current_iter, loss, trivial):
        """Count one step's ``loss`` and ``trivial`` loss (floats); at the end of an interval, stop with a
        ``DivergenceError`` naming the iteration when the run collapsed."""
        self.loss, self.trivial = self.loss + loss, self.trivial + trivial
        if current_iter % self.print_freq:
            return
        ratio, self.loss, self.trivial = self.loss / max(self.trivial, 1e-12), 0.0, 0.0
        if ratio < self.level:
            self.armed, self.at_trivial = True, 0
            return
        self.at_trivial += self.armed
        if self.at_trivial >= self.intervals:
            since = current_iter - self.intervals * self.print_freq + 1
            raise DivergenceError(
                f'iteration {current_iter}: the network collapsed: its loss has been at or above {self.level} x the '
                f'loss of predicting zeros for {self.intervals} logged intervals, since iteration {since} ({ratio:.2f} '
                f'x in the last), after having been below it. Resume from a checkpoint before that with a lower '
                'train.optim_g.lr or more train.warmup_iter, or set train.collapse: ~ to train on')

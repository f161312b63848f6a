"""``python -m srdiff_basicsr.train`` that kills itself with SIGKILL at a chosen point, for
``tests/test_resume.py``. Used as the training module itself (also under torchrun, where rank 0 dies):

    python -m tests.killed_training iteration:5 -opt X.yml [BasicSR's flags]   # as iteration 5 starts
    python -m tests.killed_training save:8.state -opt X.yml                    # half-way through writing 8.state
"""
import io
import os
import signal
import sys

import torch

import srdiff_basicsr.plugin  # noqa: F401  (registration)
from srdiff_basicsr.models.cfw_model import CFWModel
from srdiff_basicsr.models.srdiff_model import SRDiffModel
from srdiff_basicsr.train import main


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at_iteration(iteration):
    for model in (SRDiffModel, CFWModel):
        def optimize_or_die(self, current_iter, optimize_parameters=model.optimize_parameters):
            if current_iter == iteration:
                die()
            return optimize_parameters(self, current_iter)

        model.optimize_parameters = optimize_or_die


def kill_while_saving(file_name):
    """Writes half of the file's bytes under the name torch.save is given (the atomic writer's temporary
    name), then dies, as a kill in the middle of the write would leave it."""
    save = torch.save

    def save_or_die(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and os.path.basename(f).lstrip('.').startswith(file_name):
            buffer = io.BytesIO()
            save(obj, buffer, *args, **kwargs)
            with open(f, 'wb') as out:
                out.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
            die()
        return save(obj, f, *args, **kwargs)

    torch.save = save_or_die


if __name__ == '__main__':
    where, what = sys.argv.pop(1).split(':')
    if os.environ.get('RANK', '0') == '0':
        kill_at_iteration(int(what)) if where == 'iteration' else kill_while_saving(what)
    main()

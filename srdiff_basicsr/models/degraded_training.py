"""Training on LR images made from the HR on the fly (``degradation`` in the options), for any BasicSR model."""
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import MODEL_REGISTRY

from srdiff_basicsr.data.degradation import build_degradation
from srdiff_basicsr.errors import DatasetError
from srdiff_basicsr.models.checkpointed import CheckpointedTraining

STATE_KEY = 'degradation'


class DegradedTraining:
    """A model mixin: each training batch of a dataset without LR (RealESRGANDataset's HR crops and kernels) becomes
    an (lq, gt) pair by the ``degradation`` stage, on the model's device, before the model's own ``feed_data``.
    The stage's state (Real-ESRGAN's training-pair pool) is part of the training state, so a resumed run goes on
    with the same pool. Batches that carry an LR (validation) pass through."""

    degradation = None
    _pending_degradation_state = None

    def feed_data(self, data):
        super().feed_data(self.degraded(data))

    def degraded(self, data):
        """``data``, or for a batch without LR the (lq, gt) pair the stage makes of it (a model whose own
        ``feed_data`` does not reach this class's calls this first)."""
        if 'kernel1' in data and 'lq' not in data:
            if not self.opt.get('degradation'):
                raise DatasetError("a batch of HR crops and blur kernels without LR ('lq'), and no `degradation` in "
                                   'the options to make it')
            lq, gt = self._degradation()(data)
            return {'lq': lq, 'gt': gt}
        return data

    def _degradation(self):
        """The stage, made on first use: on the device the model has then (SRDiffModel moves after BasicSR's set-up)."""
        if self.degradation is None:
            self.degradation = build_degradation(self.opt['degradation'], self.opt['scale'], self.device)
            if self._pending_degradation_state is not None:
                self.degradation.load_state_dict(self._pending_degradation_state)
                self._pending_degradation_state = None
        return self.degradation

    def extra_training_state(self):
        if self.degradation is not None:
            return {STATE_KEY: self.degradation.state_dict()}
        if self._pending_degradation_state is not None:  # resumed, saved again before a batch
            return {STATE_KEY: self._pending_degradation_state}
        return {}

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if STATE_KEY in resume_state:
            if get_dist_info()[1] > 1:
                get_root_logger().warning('degradation: the training state holds the training-pair pool of process 0, '
                                          'which every process takes up; the resumed run is not bit-exact')
            self.degradation = None
            self._pending_degradation_state = resume_state[STATE_KEY]


@MODEL_REGISTRY.register()
class DegradedSRModel(CheckpointedTraining, DegradedTraining, SRModel):
    """BasicSR's SRModel trained on LR made on the fly by ``degradation`` (Real-ESRGAN's RealESRNetModel, on any
    device, its pool in the training state): e.g. an RRDB encoder pretrained with L1 on real-world degradations."""

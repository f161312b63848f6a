"""What every BasicSR model of this plugin adds to BasicSR's checkpoints and validation (BasicSR's own models are
left as they are): network files written atomically and never with non-finite weights, the training state with
every rank's RNG states and data position (``checkpoints``, ``resume``: a killed run resumes bit-exactly), and
validation on forked RNG states, so that validating never shifts the random numbers training draws next."""
from basicsr.models.base_model import BaseModel

from srdiff_basicsr.host import checkpoints, resume


class CheckpointedTraining:
    """Mixin before BasicSR's model class: ``class MyModel(CheckpointedTraining, SRModel)``."""

    save_network = checkpoints.save_network
    save_training_state = checkpoints.save_training_state
    validation = resume.validating_on_forked_rng(BaseModel.validation)

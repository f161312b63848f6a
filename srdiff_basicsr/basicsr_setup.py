"""Importing this module makes BasicSR ready for our adapter modules: the fixes of ``compat`` (some must precede
BasicSR's own imports), BasicSR imported, every model's checkpoints written by ``checkpoints`` and validated on
forked RNG states (``resume``), and our archs in its ARCH_REGISTRY (BasicSR builds networks from it).
``srdiff_basicsr.models``, ``data`` and ``metrics`` import it before they import BasicSR."""
from srdiff_basicsr import compat

compat.before_basicsr_import()
import basicsr  # noqa: E402,F401  (after the fix above)

compat.after_basicsr_import()

from basicsr.models.base_model import BaseModel  # noqa: E402
from basicsr.utils.registry import ARCH_REGISTRY  # noqa: E402

from srdiff_basicsr import checkpoints, resume  # noqa: E402
from srdiff_basicsr.archs import ARCHS  # noqa: E402

# a module's body runs once per process: each of these happens once
BaseModel.save_network = checkpoints.save_network
BaseModel.save_training_state = checkpoints.save_training_state
BaseModel.validation = resume.validating_on_forked_rng(BaseModel.validation)
for _arch in ARCHS.values():
    ARCH_REGISTRY.register(_arch)

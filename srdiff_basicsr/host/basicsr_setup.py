"""Importing this module makes BasicSR ready for our adapter modules: the fixes of ``compat`` (some must precede
BasicSR's own imports), BasicSR imported, and our archs in its ARCH_REGISTRY (BasicSR builds networks from it).
``srdiff_basicsr.models``, ``data`` and ``metrics`` import it before they import BasicSR. No BasicSR model is
changed: our models take our checkpoints and validation from ``models.checkpointed``."""
from srdiff_basicsr.host import compat

compat.before_basicsr_import()
import basicsr  # noqa: E402,F401  (after the fix above)

compat.after_basicsr_import()

from basicsr.utils.registry import ARCH_REGISTRY  # noqa: E402

from srdiff_basicsr.archs import ARCHS  # noqa: E402

# a module's body runs once per process: registration happens once
for _arch in ARCHS.values():
    ARCH_REGISTRY.register(_arch)

"""Importing this module plugs srdiff_basicsr into BasicSR: BasicSR fixed and our archs registered
(``basicsr_setup``), then our datasets, losses, metrics and models in BasicSR's registries, and our additions to
its training and test scripts (``train_script``).

The import hook (``srdiff_basicsr_hook``) imports it when a program imports BasicSR, and so do the entry points.
The method layer (archs, diffusion, ops, the pipeline) never does: sampling with networks leaves BasicSR as it is.
"""
import srdiff_basicsr.host.basicsr_setup  # noqa: F401
from srdiff_basicsr import data, losses, metrics, models  # noqa: F401  (their registration decorators)
from srdiff_basicsr.host import train_script

train_script.install()

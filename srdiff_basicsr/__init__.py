"""SRDiff for BasicSR: importing this package registers its archs, datasets and model."""
from srdiff_basicsr import compat

compat.before_basicsr_import()
import basicsr  # noqa: E402,F401  (after the fix above)

compat.after_basicsr_import()

from srdiff_basicsr import archs, data, metrics, models  # noqa: E402,F401  (registration)

__version__ = "0.1.0"

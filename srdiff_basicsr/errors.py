"""The errors a user can cause, one place: each names the option, file or flag it concerns.

Entry points catch ``USER_ERRORS`` and print one line instead of a traceback.
"""


class OptionsError(ValueError):
    """An option that is missing, unknown or inconsistent, named by its path in the options file."""


class TileError(OptionsError):
    """Tile options that cannot work with the model."""


class DatasetError(ValueError):
    """A problem with the user's data, stated with the file or option it concerns."""


class WeightsError(ValueError):
    """A weight file that is missing, unreadable or does not fit the network built from the options."""


class ImageReadError(ValueError):
    """A file that is not an image this project can read."""


class LauncherError(RuntimeError):
    """A launcher was named but the environment it sets up is missing."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight; named with the iteration."""


USER_ERRORS = (OptionsError, DatasetError, WeightsError, ImageReadError, LauncherError, DivergenceError,
               FileNotFoundError)

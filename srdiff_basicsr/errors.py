"""The errors a user can cause, one place: each names the option, file or flag it concerns.

All are ``SRDiffError``s (each also the built-in type it refines, so code that catches ValueError or OSError
keeps working); entry points catch ``USER_ERRORS`` and print one line instead of a traceback.
"""
import math


class SRDiffError(Exception):
    """A problem the user can fix (an option, a file, the data, the environment), stated so that they can."""


class OptionsError(SRDiffError, ValueError):
    """An option that is missing, unknown or inconsistent, named by its path in the options file."""


class TileError(OptionsError):
    """Tile options that cannot work with the model."""


class DatasetError(SRDiffError, ValueError):
    """A problem with the user's data, stated with the file or option it concerns."""


class WeightsError(SRDiffError, ValueError):
    """A weight file that is missing, unreadable or does not fit the network built from the options."""


class ImageReadError(SRDiffError, ValueError):
    """A file that is not an image this project can read."""


class LauncherError(SRDiffError, RuntimeError):
    """A launcher was named but the environment it sets up is missing."""


class DivergenceError(SRDiffError, RuntimeError):
    """Training produced a non-finite loss, gradient or weight; named with the iteration."""


class CheckpointError(SRDiffError, OSError):
    """A checkpoint that could not be written (a full disk, a read-only folder): training stops, naming the file."""


USER_ERRORS = (SRDiffError, FileNotFoundError)


def require(value, ok, where, must):
    """``value`` when ``ok(value)``; else an OptionsError naming the option, the value and what it must be."""
    try:
        good = ok(value)
    except TypeError:
        good = False
    if not good:
        raise OptionsError(f'{where}: must be {must}, got {value!r}')
    return value


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_probability(value):
    return is_number(value) and 0 <= value <= 1


def is_number(value):
    """A finite int or float (inf and nan are never a valid option value here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

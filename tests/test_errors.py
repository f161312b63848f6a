"""The user errors are one family: every error class of srdiff_basicsr.errors is an SRDiffError, caught by the
entry points, and still the built-in type it refines."""
import inspect

from srdiff_basicsr import errors


def test_every_error_type_is_an_srdiff_error_the_entry_points_catch_and_keeps_its_builtin_base():
    classes = [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, Exception)]
    assert len(classes) >= 8
    for cls in classes:
        assert issubclass(cls, errors.SRDiffError) and issubclass(cls, errors.USER_ERRORS), cls
    assert issubclass(errors.OptionsError, ValueError) and issubclass(errors.TileError, errors.OptionsError)
    assert issubclass(errors.CheckpointError, OSError) and issubclass(errors.DivergenceError, RuntimeError)
    assert not issubclass(ValueError, errors.USER_ERRORS)  # a bug of ours still shows its traceback

"""One vocabulary for the options of the tables (samplers, spaces, schedules, tiles, degradations): each option is an
``Option`` (default, a line of help, a check), from which the checks and defaults (``checked_options``), the
inference command's flags and the README's option tables (``option_table``) come."""
from dataclasses import dataclass
from typing import Callable

from srdiff_basicsr.errors import OptionsError, is_number


@dataclass(frozen=True)
class Option:
    """An option: its default, a line of help, and a check ``(value, **context) -> None`` or what the value must be
    (``context``: what the table gives its checks, e.g. a sampler's ``num_timesteps``)."""
    default: object
    help: str
    check: Callable = lambda value, **context: None


def must_be(valid, what):
    """A check from a predicate: ``what`` the value must be when ``valid(value)`` is false."""
    return lambda value, **context: None if valid(value) else what


positive = must_be(lambda v: is_number(v) and v > 0, 'a number > 0')


def checked_options(spec, given, where, owner, error=OptionsError, **context):
    """``given`` ({name: value}) with the defaults of ``spec`` ({name: Option}) filled in and every option checked;
    an unknown one or a bad value is an ``error`` naming ``where.<option>`` (``owner``: whose options they are)."""
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise error(f'{where}: unknown option(s) {unknown} for {owner}; known: {sorted(spec)}')
    options = {key: given.get(key, option.default) for key, option in spec.items()}
    for key, value in options.items():
        must = spec[key].check(value, **context)
        if must:
            raise error(f'{where}.{key}: must be {must}, got {value!r}')
    return options


def option_table(rows):
    """A markdown table of ``rows`` [(owner, spec)]: each option's owner, name, default and help."""
    lines = ['| of | option | default | what it is |', '|---|---|---|---|']
    for owner, spec in rows:
        for name, option in spec.items():
            default = '~' if option.default is None else f'{option.default}'
            lines.append(f'| {owner} | `{name}` | `{default}` | {option.help.replace("|", "/")} |')
    return '\n'.join(lines)

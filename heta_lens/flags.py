"""Command-line flags declared on dataclass fields: one place for each default.

A settings dataclass declares a field with :func:`flag` (or :func:`positional`), which keeps
the field's default and stores in the field's metadata how the field appears on the command
line: help text, choices, a parser for the string, another flag name. :func:`add_flags` adds
one argparse argument per such field, whose default *is* the field's default, and
:func:`from_flags` builds the dataclass back from the parsed namespace. A field declared with
plain ``dataclasses.field`` stays library-only. (Inseq declares its CLI arguments on
dataclasses in the same way.)

A boolean field becomes a switch: ``--NAME`` sets it when its default is ``False``; a field
whose default is ``True`` needs a ``name`` such as ``--no-plots``, which clears it.
"""

import argparse
import dataclasses
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

T = TypeVar("T")

_KEY = "heta_lens.flag"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Flag:
    """How one dataclass field appears on the command line.

    Attributes:
        help: The flag's help text.
        name: Option string (default ``--`` + the field name with ``-`` for ``_``).
        positional: A positional argument (named after the field) instead of an option.
        choices: Allowed values of the string.
        parse: Turns the string into the field's value (default: the field's type when it is
            ``int``, ``float``, ``str`` or ``Path``, optionally ``| None``).
        metavar: Placeholder of the value in ``--help``.
    """

    help: str
    name: str | None = None
    positional: bool = False
    choices: tuple[str, ...] | None = None
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None


def flag(
    default: T,
    *,
    help: str,
    name: str | None = None,
    choices: tuple[str, ...] | None = None,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
) -> T:
    """A dataclass field with ``default`` that :func:`add_flags` turns into an option."""
    spec = Flag(help=help, name=name, choices=choices, parse=parse, metavar=metavar)
    return dataclasses.field(default=default, metadata={_KEY: spec})


def positional(*, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A required dataclass field that :func:`add_flags` turns into a positional argument."""
    return dataclasses.field(metadata={_KEY: Flag(help=help, positional=True, choices=choices)})


def flag_fields(cls: type) -> list[tuple[dataclasses.Field[Any], Flag]]:
    """The fields of dataclass ``cls`` declared as flags, in declaration order."""
    return [(f, f.metadata[_KEY]) for f in dataclasses.fields(cls) if _KEY in f.metadata]


def _scalar_type(annotation: Any) -> Callable[[str], Any]:
    options = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    kinds = [a for a in options if a is not type(None)] if options else [annotation]
    if len(kinds) == 1 and kinds[0] in (int, float, str, Path):
        return kinds[0]
    raise TypeError(f"a flag of type {annotation!r} needs a parse function")


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one argument to ``parser`` per flag field of dataclass ``cls``.

    Args:
        parser: The parser (or subcommand parser) to extend.
        cls: A dataclass whose fields were declared with :func:`flag` / :func:`positional`.

    Raises:
        TypeError: A non-boolean flag of a type without a ``parse`` function, or a ``True``
            boolean flag without a ``name``.
    """
    for field, spec in flag_fields(cls):
        choices = list(spec.choices) if spec.choices is not None else None
        if spec.positional:
            parser.add_argument(field.name, choices=choices, help=spec.help)
            continue
        option = spec.name or "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            if field.default and spec.name is None:
                raise TypeError(f"flag {field.name} defaults to True: give it a --no-… name")
            action = "store_false" if field.default else "store_true"
            parser.add_argument(option, dest=field.name, action=action, help=spec.help)
            continue
        parser.add_argument(
            option,
            dest=field.name,
            default=field.default,
            type=spec.parse or _scalar_type(field.type),
            choices=choices,
            metavar=spec.metavar,
            help=spec.help,
        )


def from_flags(cls: type[T], namespace: argparse.Namespace) -> T:
    """An instance of dataclass ``cls`` from a namespace parsed with :func:`add_flags`."""
    return cls(**{field.name: getattr(namespace, field.name) for field, _ in flag_fields(cls)})


def comma_list(text: str) -> tuple[str, ...]:
    """The parse function of comma-separated flags: names, stripped, empty ones dropped.

    Examples:
        >>> comma_list("heta, occlusion,,")
        ('heta', 'occlusion')
    """
    return tuple(part.strip() for part in text.split(",") if part.strip())

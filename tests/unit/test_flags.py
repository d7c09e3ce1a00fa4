"""``heta_lens.flags``: argparse arguments generated from dataclass fields."""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from heta_lens.flags import add_flags, comma_list, flag, from_flags, positional


@dataclass(frozen=True, kw_only=True)
class Options:
    name: str = positional(choices=("a", "b"), help="which")
    count: int = flag(3, help="how many")
    scale: float | None = flag(None, help="a factor")
    where: Path | None = flag(None, help="a folder")
    items: tuple[str, ...] = flag(("x",), parse=comma_list, help="names")
    verbose: bool = flag(False, help="say more")
    plots: bool = flag(True, name="--no-plots", help="no figures")
    library_only: int = field(default=7)


def _parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser()
    add_flags(parser, Options)
    return from_flags(Options, parser.parse_args(argv))


def test_defaults_come_from_the_fields():
    assert _parse(["a"]) == Options(name="a")


def test_values_are_parsed_to_the_field_types():
    got = _parse(["b", "--count", "5", "--scale", "0.5", "--where", "d", "--items", "p, q,",
                  "--verbose", "--no-plots"])  # fmt: skip
    assert got == Options(
        name="b", count=5, scale=0.5, where=Path("d"), items=("p", "q"), verbose=True, plots=False
    )


def test_library_only_fields_get_no_flag():
    parser = argparse.ArgumentParser()
    add_flags(parser, Options)
    with pytest.raises(SystemExit):
        parser.parse_args(["a", "--library-only", "1"])


def test_choices_are_enforced():
    with pytest.raises(SystemExit):
        _parse(["c"])


def test_flags_that_cannot_be_generated_are_refused():
    @dataclass(frozen=True)
    class NoParse:
        pairs: tuple[int, int] = flag((1, 2), help="?")

    @dataclass(frozen=True)
    class OnByDefault:
        plots: bool = flag(True, help="?")

    for cls, message in ((NoParse, "needs a parse function"), (OnByDefault, "--no-")):
        with pytest.raises(TypeError, match=message):
            add_flags(argparse.ArgumentParser(), cls)

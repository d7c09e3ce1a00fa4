"""Runtime shape/dtype checking for the public API.

jaxtyping annotations (TransformerLens dimension names) are checked at call time with beartype,
the checker jaxtyping recommends. typeguard was the first choice, but transformer-lens 3.9
requires typeguard>=4.2, and jaxtyping documents typeguard 3.x/4.x as unreliable inside its
dimension memo; ``tests/unit/test_typing.py`` proves the chosen checker fires.
"""

from collections.abc import Callable
from typing import TypeVar

from beartype import beartype
from jaxtyping import jaxtyped
from torch import Tensor

F = TypeVar("F", bound=Callable[..., object])

TokensLike = Tensor | str | list
"""Token ids ``[pos]``/``[1, pos]``, a list of ids, or a string. Deliberately loose for the
runtime checker: :func:`heta_lens.inputs.as_token_tensor` validates contents with clear errors."""


def typechecked(fn: F) -> F:
    """Decorate ``fn`` so its jaxtyping annotations are enforced at runtime."""
    return jaxtyped(typechecker=beartype)(fn)

"""Fixtures for acceptance tests on the real embedded SmolLM2-135M (loaded once per module)."""

import socket

import pytest


class NetworkTouched(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything opens an outbound connection."""

    def refuse(*args, **_kwargs):
        raise NetworkTouched(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def smollm2():
    from heta_lens.models import load_model

    with pytest.MonkeyPatch.context() as patch:  # the module-scoped load is offline too

        def refuse(*_args, **_kwargs):
            raise NetworkTouched("network access attempted while loading")

        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        return load_model("smollm2-135m")

"""Loaded by the demo server the browser test starts (``PYTHONPATH=tests/e2e/offline``).

Refuses every outbound connection and name lookup that is not for this machine, and logs it to
stderr as ``heta-e2e: refused ...``: the test fails when that line appears in the server log, so
nothing in the demo (Gradio, transformers, huggingface_hub) can phone home unnoticed.
"""

import socket
import sys

_LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _is_local(host: object) -> bool:
    return host in _LOCAL or (isinstance(host, str) and host.startswith("127."))


def _check(host: object, what: str) -> None:
    if not _is_local(host):
        sys.stderr.write(f"heta-e2e: refused {what} to {host!r}\n")
        sys.stderr.flush()
        raise OSError(f"heta-e2e: outbound {what} to {host!r} refused (offline test)")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        _check(address[0], "connection")
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        _check(address[0], "connection")
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    _check(host.decode() if isinstance(host, bytes) else host, "name lookup")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo

"""The dashboard's control token and its request checks.

A random token is made at every dashboard start (``secrets.token_urlsafe``) and written to
a file readable by its owner only (0600) under the data directory; the terminal shows only
that file's path. The page never contains it: the user pastes it into the page, which keeps
it in ``sessionStorage`` (gone when the tab closes) and sends it as ``Authorization: Bearer``.
Comparisons use ``hmac.compare_digest``.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = "dashboard.token"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_token(data_dir: Path, token: str) -> Path:
    """Write ``token`` to ``data_dir/dashboard.token`` with mode 0600 (replacing an older one); its path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TOKEN_FILE
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when the file was left behind with other permissions
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (constant-time comparison)."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


def host_name(host_header: str | None) -> str:
    """The host of a ``Host`` header without its port ("[::1]:5001" -> "[::1]")."""
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def local_host(host_header: str | None) -> bool:
    """Whether a request names this machine (a page of another site resolved to 127.0.0.1 does not)."""
    return host_name(host_header) in LOCAL_HOSTS

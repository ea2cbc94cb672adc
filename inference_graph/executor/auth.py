"""Optional bearer-token auth for the executor's REST and gRPC fronts (SECURITY.md O1).

The token comes only from the environment (``SMARTRECO_API_TOKEN``) or a secret file
(``SMARTRECO_API_TOKEN_FILE`` / ``--token-file``, e.g. a mounted Kubernetes Secret), never from a
command-line value (visible in ``ps``). No token configured = auth off (loopback development).
Tokens are compared with :func:`hmac.compare_digest` so the time does not leak a matching prefix.
Health, readiness and metrics stay open: probes and Prometheus carry no token.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from smartreco import settings
from smartreco.errors import SmartRecoError

TOKEN_ENV = settings.API_TOKEN.name
TOKEN_FILE_ENV = settings.API_TOKEN_FILE.name
#: paths that never need a token (probes and scraping)
OPEN_PATHS = frozenset({"/health/ping", "/health/status", "/ready", "/metrics"})
MIN_TOKEN_CHARS = 16


class TokenConfigError(SmartRecoError):
    """The configured token is unusable (empty file, too short)."""


def load_token(token_file: str | None = None) -> str | None:
    """The API token: ``token_file`` first, then ``$SMARTRECO_API_TOKEN_FILE``, then ``$SMARTRECO_API_TOKEN``."""
    path = token_file or settings.API_TOKEN_FILE.get()
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise TokenConfigError(f"token file {path}: cannot read ({exc.strerror})") from None
        source = f"token file {path}"
    else:
        token = (settings.API_TOKEN.get() or "").strip()
        source = TOKEN_ENV
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenConfigError(f"{source}: token shorter than {MIN_TOKEN_CHARS} characters")
    return token


def bearer_ok(header: str | None, token: str | None) -> bool:
    """True when auth is off or ``header`` is ``Bearer <token>`` (constant-time comparison)."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())

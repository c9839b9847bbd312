"""HTTP requests to the real servers tests start."""

from __future__ import annotations

import urllib.error
import urllib.request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, accept: str | None = None) -> tuple[int, dict[str, str], str]:
    """GET ``url`` without following redirects; return status, headers and body."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with _opener.open(request, timeout=2) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def status_of(url: str) -> int:
    return fetch(url)[0]

"""The page's files, cached by the browser for as long as they do not change.

The page (`/`) is always revalidated (ETag, a revisit costs a 304 of a few
hundred bytes); the files it names are linked under `/v/<build>/...`, where
`<build>` is a digest of every file in the page's folder. Those answers are
immutable for a year: a repeat visit asks for nothing but the page, and an
upgrade that changes any file changes every link, so no browser mixes old
and new scripts. A request for an older build (a page loaded before an
upgrade) gets today's file, revalidated. The plain paths (`/js/main.js`) still
answer, revalidated, for tools and pages that link them directly.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

#: Where the versioned copies of the page's files answer.
VERSIONED = "/v"
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"
#: A relative link in the page (`src="js/main.js"`, `href="css/theme.css"`).
_LINK = re.compile(r'\b(src|href)="(?![a-z]+:|/|#)([^"?#]+)"')


class Build:
    """The digest of the page's folder, taken again only when a file's size or time changed
    (so an edited file during development is seen at the next load)."""

    def __init__(self, www: Path) -> None:
        self.www = www
        self._seen: tuple[tuple[str, int, int], ...] = ()
        self._digest = ""
        self._page: tuple[str, bytes] = ("", b"")

    def _stats(self) -> tuple[tuple[str, int, int], ...]:
        found = []
        for folder, dirs, files in os.walk(self.www):
            dirs.sort()
            for name in sorted(files):
                stat = os.stat(os.path.join(folder, name))
                found.append((os.path.relpath(os.path.join(folder, name), self.www),
                              stat.st_size, stat.st_mtime_ns))
        return tuple(found)

    def digest(self) -> str:
        """Twelve hex digits naming the folder's contents now."""
        stats = self._stats()
        if stats != self._seen:
            sha = hashlib.sha256()
            for name, _, _ in stats:
                sha.update(name.encode() + b"\0" + (self.www / name).read_bytes() + b"\0")
            self._seen, self._digest = stats, sha.hexdigest()[:12]
        return self._digest

    def last(self) -> str:
        """The digest the page was last served with (taken now if it never was): a file's
        request need not walk the folder again."""
        return self._digest or self.digest()

    def page(self) -> tuple[str, bytes]:
        """The build and `index.html` with its relative links to files pointing at that build."""
        digest = self.digest()
        if self._page[0] != digest:
            html = (self.www / "index.html").read_text(encoding="utf-8")

            def versioned(link: re.Match[str]) -> str:
                attribute, target = link.groups()
                if not (self.www / target).is_file():
                    return link.group(0)
                return f'{attribute}="{VERSIONED[1:]}/{digest}/{target}"'
            self._page = (digest, _LINK.sub(versioned, html).encode("utf-8"))
        return self._page


class _Versioned:
    """The page's files under a build: immutable when the build is today's."""

    def __init__(self, files: StaticFiles, build: Build) -> None:
        self.files = files
        self.build = build

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        current = scope["path_params"].get("build") == self.build.last()

        async def cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                headers = [h for h in message.get("headers", []) if h[0] != b"cache-control"]
                headers.append((b"cache-control", IMMUTABLE if current else REVALIDATE))
                message = {**message, "headers": headers}
            await send(message)
        await self.files(scope, receive, cached)


def page_routes(www: Path) -> list[BaseRoute]:
    """The page at `/`, its files under `/v/<build>/` and, last, every file at its own path."""
    build = Build(www)
    files = StaticFiles(directory=www, html=True)

    async def index(request: Request) -> Response:
        digest, body = build.page()
        etag = f'"{digest}"'
        headers = {"ETag": etag, "Cache-Control": REVALIDATE.decode()}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, headers=headers, media_type="text/html")

    return [Route("/", index, methods=["GET", "HEAD"]),
            Route("/index.html", index, methods=["GET", "HEAD"]),
            Mount(VERSIONED + "/{build}", _Versioned(files, build)),
            Mount("/", files)]

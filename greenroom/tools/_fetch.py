"""Fetch: a ready HTTP tool that GETs a page from an allowed host."""

from __future__ import annotations

from typing import Annotated

import msgspec

from greenroom.tools._effect import PURE
from greenroom.tools._http import HttpClient
from greenroom.tools._tool import Tool

__all__ = ["Fetch", "FetchInput", "FetchOutput"]


class FetchInput(msgspec.Struct, frozen=True, kw_only=True):
    """What to fetch."""

    url: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=2048,
            description="An absolute http(s) URL on an allowed host.",
        ),
    ]


class FetchOutput(msgspec.Struct, frozen=True, kw_only=True):
    """What came back."""

    status: int
    content_type: str | None
    text: str


class Fetch(Tool[FetchInput, FetchOutput]):
    """GET a URL from an allowed host and return its status, content type and text.

    Responses of any status come back as they are; a host not allowed, a
    body over the size limit or a timeout is an HttpError.
    """

    name = "fetch"
    effect = PURE

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def call(self, input: FetchInput) -> FetchOutput:
        """GET ``input.url`` once."""
        response = await self.http.request("GET", input.url)
        return FetchOutput(
            status=response.status,
            content_type=response.headers.get("content-type"),
            text=response.text(),
        )

"""The one reply type both request paths return: status, S3 error code, headers, body.

The wire path builds a :class:`Reply` from its HTTP response; the aiobotocore path builds one
from its response dict or its ``ClientError``, once, at its edge. Everything above reads
replies alike (:mod:`s3cache._rules` says what each one means).
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from typing import Any, Final
from xml.etree import ElementTree

from botocore.exceptions import ClientError

from s3cache._format import Body

__all__ = ["ErrorReply", "Reply"]

#: aiobotocore's parsed response of an operation.
Data = Mapping[str, Any]
_NO_DATA: Final[Data] = {}


class Reply:
    """One answer of the server.

    ``status``: the HTTP status. ``headers``: lower-cased, as botocore reports them. ``body``:
    ``bytes``, or the ``bytearray`` the wire path read a large body into (no copy). ``data``:
    aiobotocore's parsed response, for the operations only it sends (listings, batch
    deletes, bucket settings); empty otherwise. An error reply's :attr:`code` and
    :attr:`fields` are read from its XML body when first asked for.
    """

    __slots__ = ("_code", "_fields", "body", "data", "headers", "status")

    def __init__(
        self, status: int, headers: Mapping[str, str], body: Body = b"", data: Data = _NO_DATA
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.data = data
        self._fields: Mapping[str, Any] | None = None  # the error's, once parsed or given
        self._code: str | None = None

    @classmethod
    def of_client_error(cls, exc: ClientError) -> Reply:
        """The reply behind an aiobotocore ``ClientError`` (its code, message and headers)."""
        meta = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode") or 0)
        reply = cls(status, meta.get("HTTPHeaders") or {})
        reply._fields = exc.response.get("Error", {})  # parsed by botocore already
        return reply

    @property
    def code(self) -> str:
        """S3's error ``<Code>``, or the status as text when there is none (a HEAD's reply).

        Read cheaply from the body (no XML parse): a miss is a hot path.
        """
        code = self._code
        if code is None:
            if self._fields is not None:
                code = str(self._fields.get("Code") or "") or str(self.status)
            else:
                code = _code_in(self.body) or str(self.status)
            self._code = code
        return code

    @property
    def fields(self) -> Mapping[str, Any]:
        """The error's fields (``Code``, ``Message``, ``ServerTime``...), parsed once."""
        if self._fields is None:
            self._fields = _parsed(self.body, self.status)
        return self._fields

    @property
    def message(self) -> str:
        """The error's ``Message`` ("" without one)."""
        return str(self.fields.get("Message") or "")

    def error_response(self) -> dict[str, Any]:
        """botocore's parsed form of this error reply (``Error`` and ``ResponseMetadata``), for
        botocore's own retry and redirect handlers."""
        error = dict(self.fields)
        request_id = error.pop("RequestId", None) or self.headers.get("x-amz-request-id", "")
        host_id = error.pop("HostId", None) or self.headers.get("x-amz-id-2", "")
        return {
            "Error": error,
            "ResponseMetadata": {
                "RequestId": request_id,
                "HostId": host_id,
                "HTTPStatusCode": self.status,
                "HTTPHeaders": self.headers,
            },
        }

    def __repr__(self) -> str:
        return f"Reply(status={self.status}, code={self.code!r})"


class ErrorReply(Exception):
    """The server's refusal, kept as the cause of the :class:`~s3cache.errors.S3CacheError` it
    became: the operation, status, code, message and request id (no header, no body)."""

    def __init__(self, op: str, reply: Reply) -> None:
        request_id = reply.fields.get("RequestId") or reply.headers.get("x-amz-request-id", "")
        where = f", request id {request_id}" if request_id else ""
        super().__init__(
            f"{op}: HTTP {reply.status or '?'} {reply.code}: {reply.message or '-'}{where}"
        )
        self.reply = reply


def _code_in(body: Body) -> str:
    """The text of the first ``<Code>`` element of ``body`` ("" when there is none)."""
    start = body.find(b"<Code>")
    if start >= 0:
        end = body.find(b"</Code>", start)
        if end > start:
            return body[start + 6 : end].decode(errors="replace")
    return ""


def _parsed(body: Body, status: int) -> dict[str, Any]:
    """An S3 XML error body's fields; a body without a ``Code`` gets the status as its code."""
    error: dict[str, Any] = {}
    if body:
        try:
            root = ElementTree.fromstring(body)  # noqa: S314 - small bodies from the server
        except ElementTree.ParseError:
            root = None
        if root is not None:
            error = {child.tag.rpartition("}")[2]: child.text or "" for child in root}
    if "Code" not in error:
        request_id: dict[str, Any] = {k: error[k] for k in ("RequestId", "HostId") if k in error}
        error = {
            "Code": str(status),
            "Message": http.client.responses.get(status, ""),
            **request_id,
        }
    return error

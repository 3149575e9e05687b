"""The error answer of the emulated API: an HTTP status and a ``{"Code", "Message"}`` body."""

from __future__ import annotations


class ApiError(Exception):
    """An API error answer: HTTP status and the ``{"Code", "Message"}`` body."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        result_data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.result_data = result_data
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        if self.result_data is not None:
            return {"ResultData": self.result_data, "Code": self.code, "Message": self.message}
        return {"Code": self.code, "Message": self.message}

"""What ``serve`` accepts: a request read, decoded and checked in the HTTP process, before LitServe queues it.

LitServe decodes a batch's requests together, and one that raised there would fail its whole batch: here a bad
request fails alone. A body over ``--max_request_mb`` is 413, malformed JSON 400, inputs of the wrong shape or
type 422, naming the expected shape. Other inputs than JSON (an image file, text) go through ``--decode
MODULE.FUNCTION``, a function ``decode(body: bytes, content_type: str)`` that returns one input or a list of
them (:func:`decode_json` is the default); they are then checked against the data's own inputs.
"""

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import torch

from linear_pl.runner.errors import UsageError
from linear_pl.runner.internals import one_line


@dataclass(frozen=True)
class Inputs:
    """What one input is: the shape without the batch dimension, and the dtype (the data's own)."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    def expected(self) -> str:
        one = ", ".join(map(str, self.shape))
        return f"one input of shape [{one}] or a list of them (shape [N, {one}])"

    def check(self, x: object) -> torch.Tensor:
        """The inputs as a batch, or ValueError naming the expected shape."""
        try:
            batch = torch.as_tensor(x, dtype=self.dtype)
        except (TypeError, ValueError, RuntimeError) as error:
            why = one_line(str(error))
            raise ValueError(f"x is not numbers of one shape ({why}); expected {self.expected()}") from None
        batch = batch.unsqueeze(0) if tuple(batch.shape) == self.shape else batch
        if tuple(batch.shape[1:]) != self.shape or len(batch) == 0:
            raise ValueError(f"x has shape {list(batch.shape)}; expected {self.expected()}")
        if batch.is_floating_point() and not bool(batch.isfinite().all()):
            raise ValueError(f"x has a value that is not finite; expected {self.expected()}")
        return batch


def decode_json(body: bytes, content_type: str) -> object:
    """The default decode: ``{"x": INPUTS}``. Malformed JSON raises json.JSONDecodeError (400), the rest ValueError
    (422)."""
    request = json.loads(body)
    if not isinstance(request, dict) or "x" not in request:
        raise ValueError('expected a JSON object {"x": INPUTS}')
    return request["x"]


def reply(status: int, detail: str) -> tuple[dict, list[list[bytes]]]:
    body = json.dumps({"detail": detail}).encode()
    headers = [[b"content-type", b"application/json"], [b"content-length", str(len(body)).encode()]]
    return {"type": "http.response.start", "status": status, "headers": headers}, body


class RequestCheck:
    """ASGI middleware on ``POST /predict``: 413 for a body over ``max_bytes``, 400 for malformed JSON, 422 for
    inputs of the wrong shape or type; a good request goes on as ``{"x": INPUTS}`` with its batch dimension."""

    def __init__(self, app, *, path: str, max_bytes: int, inputs: Inputs, decode: Callable) -> None:
        self.app, self.path, self.max_bytes, self.inputs, self.decode = app, path, max_bytes, inputs, decode

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        too_large = f"the request is over --max_request_mb ({self.max_bytes} bytes)"
        if int(headers.get(b"content-length", b"0") or 0) > self.max_bytes:
            return await self.refuse(send, 413, too_large)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self.refuse(send, 413, too_large)
        try:
            x = self.inputs.check(self.decode(body, headers.get(b"content-type", b"").decode("latin-1")))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return await self.refuse(send, 400, f"malformed JSON: {error}")
        except (ValueError, TypeError) as error:
            return await self.refuse(send, 422, str(error))
        body = json.dumps({"x": x.tolist()}).encode()
        headers.update({b"content-type": b"application/json", b"content-length": str(len(body)).encode()})
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # the client's disconnect, where the app waits for one
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": list(headers.items())}, replay, send)

    @staticmethod
    async def refuse(send, status: int, detail: str) -> None:
        start, body = reply(status, detail)
        await send(start)
        await send({"type": "http.response.body", "body": body})


def import_decode(path: str) -> Callable:
    """``--decode MODULE.FUNCTION``: the function, or one line naming what is missing."""
    module, _, name = path.rpartition(".")
    try:
        decode = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise UsageError(f"--decode {path}: cannot import it ({error})") from None
    if not callable(decode):
        raise UsageError(f"--decode {path}: not a function decode(body, content_type)")
    return decode

"""Request bodies: read up to a size limit, and JSON parsed with a nesting limit and finite numbers only.

`read_body` runs on the event loop (it only moves bytes); `parse_json` is CPU work for a worker
thread. The nesting is measured on the raw bytes before parsing, so a body of 100000 `[` is
refused without the parser ever recursing into it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
from aiohttp import web

from .errors import TooLarge, WorkflowError

READ_CHUNK_BYTES = 1 << 16
DEPTH_CHUNK = 1 << 20
# A JSON string, escapes included: what lies inside one never counts as nesting.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def too_large(size: str, limit: int) -> TooLarge:
    return TooLarge(f"the body is {size} bytes; this server accepts at most {limit} (max_body_bytes); "
                    "send fewer or smaller images per request")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or TooLarge as soon as it is known to exceed `limit` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(str(declared), limit)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise too_large(f"more than {limit}", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _outside_strings(data: bytes) -> bytes:
    """`data` with every JSON string removed.

    Without an escaped quote, every `"` opens or closes a string, so splitting on quotes and keeping
    every other piece is exact, and much quicker than the regular expression that handles escapes
    (which holds the interpreter for long on a large body of base64 and would delay /healthz).
    """
    if b'\\"' not in data:
        return b"".join(data.split(b'"')[::2])
    return _STRING.sub(b"", data)


def nesting_depth(data: bytes, stop_above: int) -> int:
    """How deep arrays and objects nest in `data` (strings skipped); stops counting past `stop_above`."""
    brackets = _outside_strings(data).translate(None, _NOT_BRACKETS)
    deepest, level = 0, 0
    for start in range(0, len(brackets), DEPTH_CHUNK):
        chunk = np.frombuffer(brackets, dtype=np.uint8, count=min(DEPTH_CHUNK, len(brackets) - start), offset=start)
        steps = np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1).astype(np.int32)
        levels = level + np.cumsum(steps)
        deepest = max(deepest, int(levels.max()))
        level = int(levels[-1])
        if deepest > stop_above:
            break
    return deepest


def _no_constants(name: str) -> Any:
    raise WorkflowError(f"the body holds {name}, which is not a JSON number; send finite numbers")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise WorkflowError(f"the number {text[:40]} is beyond the range of a 64-bit float; send finite numbers")
    return value


def parse_json(data: bytes, max_depth: int) -> dict[str, Any]:
    """A JSON object from `data`; WorkflowError (400) naming what is wrong otherwise."""
    depth = nesting_depth(data, max_depth)
    if depth > max_depth:
        raise WorkflowError(f"the JSON body nests arrays and objects deeper than {max_depth} levels, the most "
                            "this server accepts (max_json_depth)")
    try:
        body = json.loads(data, parse_constant=_no_constants, parse_float=_finite)
    except WorkflowError:
        raise
    except (ValueError, RecursionError) as error:
        raise WorkflowError(f"the body is not JSON ({error})") from error
    if not isinstance(body, dict):
        raise WorkflowError("the body must be a JSON object")
    return body

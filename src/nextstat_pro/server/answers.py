"""How the API's hot read routes answer with a service's model: serialized once, and a bounded
read on the event loop.

Serialized once (``json_answer``): FastAPI validates the model a route returns against the
route's ``response_model`` again before serializing it (for a plain-function route in a second
worker-thread hop). The services return models they already validated, so these routes return the
model's JSON themselves, with the headers a dependency set (a browser session's refreshed cookie).
The ``response_model`` stays on the route for the OpenAPI document.

A bounded read on the event loop (``answer_bounded``): a read that indexes narrow and a
page bounds (a runs page without free text or a duration bound, one run, one registry version)
runs inline instead of in a worker thread. SQLite releases the GIL for each row it steps, so
threads reading at once hand the GIL back and forth on every row; on 10^5 runs under 32 clients
(benchmarks/bench_server.py, SQLite) the runs list answered 176 requests/s from 8 threads, 246 from
one, 343 inline. On PostgreSQL on the same machine inline was ahead as well (one worker 219-246
against 198 from threads; two workers 391 against 274): the thread hop and the GIL cost more than
overlapping the round trips saved. A process then answers these reads one after another, as a
synchronous worker does: on PostgreSQL ``serve --workers N`` runs more processes. A read that may scan (free text
over a large project) still goes to a thread, so it cannot hold up ``/healthz`` or other requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from fastapi import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

P = ParamSpec("P")
M = TypeVar("M", bound=BaseModel)


def json_answer(model: BaseModel, response: Response) -> Response:
    """``model`` as the JSON body FastAPI would have written, with the headers dependencies set
    on the request's ``response``."""
    out = Response(model.model_dump_json(by_alias=True), media_type="application/json")
    out.headers.raw.extend(response.headers.raw)
    return out


async def answer(response: Response, read: Callable[P, M], *args: P.args, **kwargs: P.kwargs) -> Response:
    """The JSON of a read that may take long (a worker thread)."""
    return json_answer(await run_in_threadpool(read, *args, **kwargs), response)


def answer_bounded(response: Response, read: Callable[P, M], *args: P.args, **kwargs: P.kwargs) -> Response:
    """The JSON of a bounded read, on the event loop (see the module's text for what qualifies)."""
    return json_answer(read(*args, **kwargs), response)

"""How the API's hot read routes answer with a service's model: in one thread hop or none, and
serialized by the route.

``json_answer``: FastAPI runs a plain-function route in a request thread and then checks the
model it returned against the route's ``response_model`` in a second thread hop before
serializing it. These routes are coroutines that call the service themselves (in a thread,
``answer``, or inline, ``answer_bounded``) and return the model's JSON (the bytes FastAPI would
write), with the headers a dependency set (a browser session's refreshed cookie). The
``response_model`` stays on the route for the OpenAPI document.

``answer_bounded``: a read that an index narrows and a page bounds, and that touches only the
database (a runs page whose filters walk an index: ``RunFilter.bounded``; a registry version
without its runs), runs inline on the event loop instead of in a request thread. SQLite
releases the GIL for each row it steps, so threads reading at once hand the GIL back and forth on
every row; on 10^5 runs under 32 clients (benchmarks/bench_server.py, SQLite) the runs list
answered 176 requests/s from 8 threads, 246 from one, 343 inline. On PostgreSQL on the same
machine inline was ahead as well (one worker 219-246 against 198 from threads; two workers 391
against 274): the thread hop and the GIL cost more than overlapping the round trips saved. A
process then answers these reads one after another, as a synchronous worker does (on PostgreSQL
``serve --workers N`` runs more processes), and a database that stalls stalls the process.
Anything that may take long stays in a thread: a read that may scan (free text, a duration
bound, an approval or version filter, a run id prefix, an audit query) or reads the object
store (a run's manifest).
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

"""A closed-loop HTTP load: C clients (httpx, asyncio) each send the next request as soon as the
last answered, for a fixed time; latencies per request. Used by bench_server.py on both sides
(our server and MLflow's), so both meet the same load. Needs only httpx."""

from __future__ import annotations

import asyncio
import http.client
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

Request = Callable[[int], tuple[str, str, dict[str, Any]]]  # i -> (method, url, httpx kwargs)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3 if values else float("nan")


async def _load(request: Request, clients: int, seconds: float, headers: dict[str, str]) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    counter = 0

    # One AsyncClient (one keep-alive connection) per simulated client, as separate users have:
    # 32 clients sharing one AsyncClient's pool cap the load near 380 req/s on this machine even
    # against a hello-world app (httpcore's pool under concurrency, encode/httpx#3215), so the
    # figures measured the load generator, not the server.
    async def one_client() -> None:
        nonlocal counter, errors
        async with httpx.AsyncClient(headers=headers, timeout=60) as client:
            while time.perf_counter() < end:
                counter += 1
                method, url, kwargs = request(counter)
                t0 = time.perf_counter()
                r = await client.request(method, url, **kwargs)
                latencies.append(time.perf_counter() - t0)
                if r.status_code >= 400:
                    errors += 1

    start = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    took = time.perf_counter() - start
    # The load generator's own CPU per request: it shares the machine with the server.
    client_cpu = (time.process_time() - cpu) / max(1, len(latencies)) * 1e3
    return {"req/s": len(latencies) / took, "p50 ms": pct(latencies, 0.50), "p95 ms": pct(latencies, 0.95),
            "p99 ms": pct(latencies, 0.99), "requests": float(len(latencies)), "errors": float(errors),
            "client cpu ms": client_cpu}


def load(request: Request, clients: int, seconds: float, headers: dict[str, str] | None = None) -> dict[str, float]:
    return asyncio.run(_load(request, clients, seconds, headers or {}))


def sequential_p50(request: Request, n: int, headers: dict[str, str] | None = None) -> float:
    """p50 of ``n`` requests one after another (no queueing): the server's own cost per request."""
    out = []
    with httpx.Client(headers=headers or {}, timeout=60) as client:
        for i in range(n):
            method, url, kwargs = request(i)
            t0 = time.perf_counter()
            client.request(method, url, **kwargs).raise_for_status()
            out.append(time.perf_counter() - t0)
    return pct(out, 0.5)


def sequential_p50_stdlib(request: Request, n: int, headers: dict[str, str] | None = None) -> float:
    """``sequential_p50`` with the standard library's http.client over one keep-alive connection:
    the least a client adds (httpx parses a response in Python, ~0.5 ms more on a runs page here),
    so the figure is the server's. GET requests with query parameters only."""
    out = []
    method, url, kwargs = request(0)
    if method != "GET" or set(kwargs) - {"params"}:
        raise ValueError("sequential_p50_stdlib times GET requests with query parameters")
    u = httpx.URL(url, params=kwargs.get("params"))
    conn = http.client.HTTPConnection(u.host, u.port, timeout=60)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request("GET", u.raw_path.decode(), headers=headers or {})
            r = conn.getresponse()
            r.read()
            out.append(time.perf_counter() - t0)
            if r.status != 200:
                raise RuntimeError(f"{url}: {r.status}")
    finally:
        conn.close()
    return pct(out, 0.5)


def wait_until_up(url: str, server: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Poll ``url`` until it answers 200; SystemExit when ``server`` exits or ``timeout`` passes."""
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.time() > deadline or server.poll() is not None:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.2)

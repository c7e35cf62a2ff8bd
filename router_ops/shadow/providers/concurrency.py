"""Per-endpoint concurrency limits shared by every thread and event loop of a process.

A plain `threading.Semaphore` cannot be awaited and an `asyncio.Semaphore` belongs
to one loop; a worker may run the sync adapter in a thread pool and the async one
in a loop at the same time, and the provider's rate limit counts both. So one
limiter per endpoint hands slots first-come first-served to either kind of waiter:
a thread waits on an Event, a coroutine on a future resolved through its loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any


class EndpointLimiter:
    def __init__(self, limit: int):
        self._lock = threading.Lock()
        self._limit = max(1, int(limit))
        self._in_use = 0
        # threading.Event (a thread) or (loop, future) (a coroutine), in arrival order.
        self._waiters: deque[Any] = deque()

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def limit(self) -> int:
        return self._limit

    def limit_set(self, limit: int) -> None:
        """Follow an edited max_concurrency; raising it wakes waiters, lowering it drains."""
        with self._lock:
            if self._limit == max(1, int(limit)):
                return
            self._limit = max(1, int(limit))
            granted = self._grant_locked()
        self._signal(granted)

    def _grant_locked(self) -> list[Any]:
        granted = []
        while self._waiters and self._in_use < self._limit:
            granted.append(self._waiters.popleft())
            self._in_use += 1  # the slot is handed over, never freed in between
        return granted

    def _signal(self, granted: list[Any]) -> None:
        for waiter in granted:
            if isinstance(waiter, threading.Event):
                waiter.set()
                continue
            loop, future = waiter
            try:
                loop.call_soon_threadsafe(self._future_grant, future)
            except RuntimeError:  # its loop is closed: nobody will take the slot
                self.release()

    def _future_grant(self, future: asyncio.Future) -> None:
        if future.done():  # cancelled while the grant travelled: pass the slot on
            self.release()
        else:
            future.set_result(None)

    def acquire(self) -> None:
        with self._lock:
            if not self._waiters and self._in_use < self._limit:
                self._in_use += 1
                return
            event = threading.Event()
            self._waiters.append(event)
        event.wait()

    async def acquire_async(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._waiters and self._in_use < self._limit:
                self._in_use += 1
                return
            entry = (loop, loop.create_future())
            self._waiters.append(entry)
        future = entry[1]
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                try:
                    self._waiters.remove(entry)
                    still_waiting = True
                except ValueError:
                    still_waiting = False
            # Granted already: the slot is ours to give back. If the grant is still on
            # its way, `_future_grant` sees the cancelled future and releases instead.
            if not still_waiting and future.done() and not future.cancelled():
                self.release()
            raise

    def release(self) -> None:
        with self._lock:
            self._in_use -= 1
            granted = self._grant_locked()
        self._signal(granted)

    @contextmanager
    def hold(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @asynccontextmanager
    async def hold_async(self) -> AsyncIterator[None]:
        await self.acquire_async()
        try:
            yield
        finally:
            self.release()


_limiters: dict[str, EndpointLimiter] = {}
_limiters_lock = threading.Lock()
_limiters_pid = os.getpid()


def endpoint_key(endpoint: Any) -> str:
    """A saved ModelEndpoint by its primary key; any other object by name, URL and model."""
    pk = getattr(endpoint, "pk", None)
    if pk is not None:
        return f"pk:{pk}"
    return f"endpoint:{getattr(endpoint, 'name', '')}|{endpoint.base_url}|{endpoint.model}"


def endpoint_limiter(endpoint: Any) -> EndpointLimiter:
    limit = int(getattr(endpoint, "max_concurrency", 0) or 1)
    key = endpoint_key(endpoint)
    global _limiters_pid
    with _limiters_lock:
        if _limiters_pid != os.getpid():  # a forked child starts with no calls in flight
            _limiters.clear()
            _limiters_pid = os.getpid()
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = EndpointLimiter(limit)
    limiter.limit_set(limit)
    return limiter

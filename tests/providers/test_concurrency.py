from __future__ import annotations

import asyncio
import threading
import time

from router_ops.shadow.providers.concurrency import EndpointLimiter


def test_threads_and_coroutines_share_one_limit():
    limiter = EndpointLimiter(2)
    peak, lock, current = [0], threading.Lock(), [0]

    def enter() -> None:
        with lock:
            current[0] += 1
            peak[0] = max(peak[0], current[0])

    def leave() -> None:
        with lock:
            current[0] -= 1

    def thread_work() -> None:
        with limiter.hold():
            enter()
            time.sleep(0.02)
            leave()

    async def coroutine_work() -> None:
        async with limiter.hold_async():
            enter()
            await asyncio.sleep(0.02)
            leave()

    async def loop_main() -> None:
        await asyncio.gather(*(coroutine_work() for _ in range(10)))

    threads = [threading.Thread(target=thread_work) for _ in range(10)]
    threads.append(threading.Thread(target=asyncio.run, args=(loop_main(),)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert peak[0] == 2
    assert limiter.in_use == 0


def test_a_cancelled_waiter_does_not_leak_its_slot():
    limiter = EndpointLimiter(1)

    async def main() -> None:
        await limiter.acquire_async()
        waiter = asyncio.create_task(limiter.acquire_async())
        await asyncio.sleep(0.01)
        waiter.cancel()
        limiter.release()
        await asyncio.gather(waiter, return_exceptions=True)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert limiter.in_use == 0

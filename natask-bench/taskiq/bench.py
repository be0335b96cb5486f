"""taskiq + taskiq-nats on the server natask-bench started: enqueue N tasks
one awaited publish at a time (what `await task.kiq(...)` does), then process
them with an in-process worker (taskiq's Receiver, as `taskiq worker` runs it).

Usage: bench.py NATS_URL N PAYLOAD_BYTES BATCH
BATCH is taskiq-nats' `pull_consume_batch` (its default is 1).
Prints one JSON line: {"enqueue_per_s": .., "process_per_s": .., ...}.
"""

import asyncio
import json
import sys
import time

from taskiq.receiver import Receiver
from taskiq_nats import PullBasedJetStreamBroker

URL, N, SIZE, BATCH = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
# Every load loop is bounded in time as well as in count.
DEADLINE_S = 300.0

broker = PullBasedJetStreamBroker(
    URL,
    subject=f"taskiq_bench_{BATCH}",
    stream_name=f"taskiq_bench_{BATCH}",
    durable=f"taskiq_bench_{BATCH}",
    pull_consume_batch=BATCH,
)
handled = 0
first_at = None
done = asyncio.Event()


@broker.task
async def bench_job(seq: int, sent_ns: int, pad: str) -> None:
    global handled, first_at
    if first_at is None:
        first_at = time.perf_counter()
    handled += 1
    if handled == N:
        done.set()


async def main() -> None:
    await broker.startup()
    pad = "x" * max(0, SIZE - 45)
    started = time.perf_counter()
    sent = 0
    for seq in range(N):
        if time.perf_counter() - started > DEADLINE_S:
            break
        await bench_job.kiq(seq, time.monotonic_ns(), pad)
        sent += 1
    enqueue_s = time.perf_counter() - started

    # taskiq's CLI worker runs 100 tasks at once by default.
    receiver = Receiver(broker, max_async_tasks=100, run_startup=False)
    finish = asyncio.Event()
    started = time.perf_counter()
    listener = asyncio.create_task(receiver.listen(finish))
    try:
        await asyncio.wait_for(done.wait(), DEADLINE_S)
    except asyncio.TimeoutError:
        pass
    process_s = time.perf_counter() - started
    finish.set()
    listener.cancel()
    try:
        await listener
    except BaseException:
        pass
    print(
        json.dumps(
            {
                "enqueued": sent,
                "enqueue_per_s": sent / enqueue_s,
                "handled": handled,
                "process_per_s": handled / process_s,
                "batch": BATCH,
            }
        ),
        flush=True,
    )
    await broker.shutdown()


asyncio.run(main())

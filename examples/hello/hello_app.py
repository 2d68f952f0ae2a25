"""Puff's foundation in one command: greenlets, asyncio, native I/O and a C++ extension.

Run it with `make hello` from the repository root, or `puff hello` from this folder.
"""

import asyncio
import os
import threading
import time

from asgiref.sync import async_to_sync

import puff

try:  # built by `make native-ext` from examples/native_ext
    import puff_native_ext
except ImportError:  # pragma: no cover - the demo still runs without it
    puff_native_ext = None


def greeter(name: str, delay_ms: int) -> str:
    """A plain function: it runs in its own greenlet and suspends only itself while it sleeps."""
    puff.sleep_ms(delay_ms)
    return f"{name} (after {delay_ms} ms)"


async def from_asyncio(name: str) -> str:
    """A coroutine on Puff's asyncio loop: the same Puff calls return awaitables here."""
    await puff.sleep_ms(20)
    if puff_native_ext is not None:
        return await puff_native_ext.hello_from_cpp_async(name)
    return f"hello {name} from asyncio"


@puff.blocking
def old_style_blocking_io(path: str) -> bytes:
    """Blocking code (a library that does plain file I/O) runs on the bounded blocking pool."""
    with open(path, "rb") as f:
        time.sleep(0.05)
        return f.read()


def hello() -> None:
    me = os.path.abspath(__file__)
    t0 = time.monotonic()

    # 1. Greenlets: three sleeps run concurrently, so this takes ~300 ms, not 600.
    handles = [puff.spawn(greeter, name, ms) for name, ms in (("ada", 300), ("grace", 200), ("linus", 100))]
    for line in puff.join_iter(handles):
        print(f"greenlet finished: {line}")

    # 2. Native file I/O on an I/O thread vs. Python's blocking read on the blocking pool.
    native = puff.read_file_bytes(me)
    blocking = old_style_blocking_io(me)
    print(f"read_file_bytes: {len(native)} bytes natively, {len(blocking)} bytes on a blocking thread")

    # 3. asyncio beside the greenlets: call a coroutine from this greenlet.
    print(f"asyncio says: {async_to_sync(from_asyncio)('asyncio')}")

    # 4. A C++ native function, called from this greenlet: it just returns the value.
    if puff_native_ext is not None:
        print(f"C++ says: {puff_native_ext.hello_from_cpp_async('greenlet')}")
    else:
        print("C++ extension not built: run `make native-ext`")

    print(f"python thread {threading.get_ident()}, done in {time.monotonic() - t0:.2f} s")

"""asgiref's sync_to_async / async_to_sync, bridged to Puff's greenlets (upstream-spec §4.4).

Inside the runtime:
- ``await sync_to_async(f)(...)`` on Puff's loop runs ``f`` as a greenlet on the Python thread
  (not in a thread pool), in a copy of the caller's contextvars context, so Puff calls inside
  ``f`` work and other coroutines keep running while it waits.
- ``async_to_sync(coro_fn)(...)`` in a greenlet runs the coroutine on Puff's loop and suspends
  only that greenlet. It needs the asyncio loop (``asyncio = true``).
Anywhere else both behave exactly as asgiref's originals.
"""

from __future__ import annotations

import functools

from ._scheduler import ASYNCIO, GREENLET, current_mode, spawn, state, wait_future

_patched = False


def patch() -> None:
    global _patched
    if _patched:
        return
    try:
        import asgiref.sync as sync
    except ImportError:
        return
    orig_sync_to_async = sync.SyncToAsync
    orig_async_to_sync = sync.AsyncToSync

    class SyncToAsync(orig_sync_to_async):
        async def __call__(self, *args, **kwargs):
            if current_mode() == ASYNCIO:
                return await spawn(self.func, *args, **kwargs).join()
            return await super().__call__(*args, **kwargs)

    class AsyncToSync(orig_async_to_sync):
        def __call__(self, *args, **kwargs):
            if current_mode() == GREENLET:
                if state.loop is None:
                    raise RuntimeError(
                        "async_to_sync in a Puff greenlet needs Puff's asyncio loop: set asyncio = true in puff.toml"
                    )
                fut = state.loop.create_task(self.awaitable(*args, **kwargs))
                return wait_future(fut)
            return super().__call__(*args, **kwargs)

    def sync_to_async(func=None, *, thread_sensitive=True, executor=None):
        if func is None:
            return lambda f: SyncToAsync(f, thread_sensitive=thread_sensitive, executor=executor)
        return SyncToAsync(func, thread_sensitive=thread_sensitive, executor=executor)

    def async_to_sync(awaitable=None, *, force_new_loop=False):
        if awaitable is None:
            return lambda f: AsyncToSync(f, force_new_loop=force_new_loop)
        return AsyncToSync(awaitable, force_new_loop=force_new_loop)

    functools.update_wrapper(sync_to_async, sync.sync_to_async)
    functools.update_wrapper(async_to_sync, sync.async_to_sync)
    sync.SyncToAsync = SyncToAsync
    sync.AsyncToSync = AsyncToSync
    sync.sync_to_async = sync_to_async
    sync.async_to_sync = async_to_sync
    _patched = True

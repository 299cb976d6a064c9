"""pci-vault: one-time, PIN-gated storage of a payment card form (the Rust pci-vault engine).

Everything public comes from the uniffi-generated module `pci_vault._uniffi.pci_vault`, which
loads the shared library beside it; see the package README. This file only adds the exit hook
below and makes `SessionEvents` an async iterator.
"""

import atexit as _atexit
import time as _time

from ._uniffi.pci_vault import *  # noqa: F401,F403 (the generated module's __all__)
from ._uniffi.pci_vault import __all__  # noqa: F401
from ._uniffi.pci_vault import SessionEvents as _SessionEvents
from ._uniffi.pci_vault import stop_audit_delivery as _stop_audit_delivery


def _events_aiter(self):
    return self


async def _events_anext(self):
    event = await self.next()
    if event is None:
        raise StopAsyncIteration
    return event


# `async for event in await vault.watch(id): ...` — the generated class has `next()` and
# `close()`; these two make it an async iterator.
_SessionEvents.__aiter__ = _events_aiter
_SessionEvents.__anext__ = _events_anext


def _before_interpreter_exit():
    """Keeps the vault's threads out of Python once it shuts down.

    Python ends a thread that enters the interpreter during shutdown, and when that thread
    is one of the vault's (an audit sink call, or uniffi waking an awaited call) the whole
    process aborts. So: hand over the audit events still queued (for at most 5 seconds),
    stop calling audit sinks, then let go of the GIL for a moment, so that a vault thread
    finishing a call into Python can take it back and return while that is still allowed.
    """
    _stop_audit_delivery(5000)
    _time.sleep(0.05)


_atexit.register(_before_interpreter_exit)

"""The service's own threads and the server's signals."""

from __future__ import annotations

import os
import signal
import threading
import time

# What the server stops (SIGTERM, SIGINT) and reloads (SIGHUP) by.
SERVER_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
REPEAT_AFTER_SECONDS = 1.0


def leave_signals_to_the_main_thread() -> None:
    """Block the server's signals in the calling thread: Python runs handlers in the main thread
    only, and a signal the kernel hands to another thread waits until the main thread wakes."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_SIGNALS)


def repeat_stop_signals_to_the_main_thread() -> None:
    """Signal the main thread again a second after the first SIGTERM (or SIGINT): granian 2.8's
    processes, workers and main, sometimes miss one (docs/serving.md). Call from the main thread."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    # Else a worker stopped before it sets up its own repeater would stop the server through ours.
    os.register_at_fork(after_in_child=lambda: signal.set_wakeup_fd(-1))
    repeated: set[int] = set()

    def repeat() -> None:
        leave_signals_to_the_main_thread()
        while received := os.read(read_end, 1):
            if received[0] in {signal.SIGTERM, signal.SIGINT} - repeated:
                repeated.add(received[0])
                time.sleep(REPEAT_AFTER_SECONDS)
                signal.pthread_kill(threading.main_thread().ident, received[0])

    threading.Thread(target=repeat, name="stop-signal-repeater", daemon=True).start()

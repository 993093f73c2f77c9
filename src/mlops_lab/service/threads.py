"""The service's own background threads leave the server's signals to the main thread."""

from __future__ import annotations

import os
import signal
import threading
import time

# What the server stops (SIGTERM, SIGINT) and reloads (SIGHUP) its workers by.
SERVER_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
# How long after a stop signal the main thread is signalled once more.
REPEAT_AFTER_SECONDS = 1.0


def leave_signals_to_the_main_thread() -> None:
    """Block the server's signals in the calling thread, so that the kernel hands them to a
    thread that acts on them. Python runs signal handlers in the main thread only, and a
    signal that landed on a background thread waited there until the main thread woke: a
    worker told to stop, idle in its wait, went on waiting until it was killed."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_SIGNALS)


def repeat_stop_signals_to_the_main_thread() -> None:
    """Signal the main thread once more, a second after each first SIGTERM or SIGINT. With
    granian 2.8, a worker sometimes let its first SIGTERM pass (one stop in five to ten, with
    keep-alive clients just answered): it went on serving until it was killed at the end of
    the grace period, with what its prediction log held. A second signal has always stopped
    it, and one more is harmless to a worker already stopping. Python writes every signal it
    receives to its wakeup descriptor; this thread reads it. Call it from the main thread."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    main = threading.main_thread().ident
    repeated: set[int] = set()

    def repeat() -> None:
        leave_signals_to_the_main_thread()
        while received := os.read(read_end, 1):
            number = received[0]
            if number in (signal.SIGTERM, signal.SIGINT) and number not in repeated:
                repeated.add(number)
                time.sleep(REPEAT_AFTER_SECONDS)
                signal.pthread_kill(main, number)

    threading.Thread(target=repeat, name="stop-signal-repeater", daemon=True).start()

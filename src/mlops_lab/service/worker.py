"""The service's gunicorn worker: gunicorn's threaded worker, stopping as soon as its requests
are answered.

gunicorn's own waits out its whole grace period (30 s) in one poll whenever a client holds an
idle keep-alive connection, as a proxy or a `requests.Session` does: no request is left, yet
`docker compose stop`, a SIGTERM and every SIGHUP reload took 30 s. This one closes idle
keep-alive connections when it stops (no request is in flight on them) and keeps waiting,
within the same grace period, for the requests it is answering.
"""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker

# While stopping, how often the worker looks for connections to close and requests answered.
STOPPING_POLL_SECONDS = 0.1


class PromptThreadWorker(ThreadWorker):
    def murder_keepalived(self) -> None:
        if not self.alive:
            for connection in self.keepalived_conns:
                connection.timeout = 0
        super().murder_keepalived()

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if not self.alive:
            timeout = min(timeout, STOPPING_POLL_SECONDS)
        super().wait_for_and_dispatch_events(timeout)

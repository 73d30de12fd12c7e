"""Failed logins, throttled per client address.

At most ``limit`` failures per ``window`` seconds from one address; past that,
every login from it is refused (429, ``Retry-After``) until the oldest failure
leaves the window, whether the password is right or not, so guessing costs an
attacker a window per ``limit`` guesses. The scrypt check behind each login
(about 0.1 s of CPU) is never run for a refused one. Kept in memory: a restart
forgets it, which costs an attacker a restart they cannot cause.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_TRACKED = 10_000  # addresses remembered at most; the idle ones go first


class LoginThrottle:
    def __init__(
        self,
        limit: int = 5,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # logins run in the server's worker threads

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        now = self.clock()
        with self._lock:
            failures = self._failures.get(address)
            if failures is None:
                return 0.0
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[address]
                return 0.0
            if len(failures) < self.limit:
                return 0.0
            return failures[0] + self.window - now

    def failed(self, address: str) -> None:
        now = self.clock()
        with self._lock:
            if address not in self._failures and len(self._failures) >= MAX_TRACKED:
                self._forget_idle(now)
            self._failures.setdefault(address, deque(maxlen=self.limit)).append(now)

    def _forget_idle(self, now: float) -> None:
        for address in [
            a for a, f in self._failures.items() if not f or f[-1] <= now - self.window
        ]:
            del self._failures[address]
        while len(self._failures) >= MAX_TRACKED:  # all recent: drop the oldest entry
            del self._failures[next(iter(self._failures))]

"""Continuous witnessing: the log's tail is checkpointed and witnessed shortly after each commit.

Sequencing (an event appended in its change's transaction) and witnessing (a signed
checkpoint written outside the database) are separate steps, as in Tessera; what bounds the
window in which recent events could be deleted unseen is how soon the second follows the
first. Here it follows in whichever process committed, with no daemon:

- after a transaction that appended events commits, a checkpoint is signed at once if the
  last one this process signed is at least ``checkpoint_interval_s`` old (default 1 s);
  otherwise the commit is remembered and batched into the next checkpoint;
- a process that ends signs for what it left pending (``Instance.close``; every CLI command
  also signs for events a killed process left unwitnessed, ``Instance.witness_tail``);
- long-running loops (a run renewing its lease, a job's coordinator) call ``due()`` between
  waits.

Signing never raises into the commit that triggered it: that change is committed. A failure
(the log does not verify, the witness cannot be written) is kept and raised by the next
``flush()``, so the command still ends with the integrity error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import ConfigError, NSPError


class Witnessing:
    """When to sign: ``sign`` checkpoints the whole log (a transaction of its own)."""

    def __init__(self, sign: Callable[[], object], interval_s: float) -> None:
        self._sign = sign
        self._interval = interval_s
        self._lock = threading.Lock()  # one signer at a time
        self._count = threading.Lock()  # the commit counter
        self._committed = 0  # commits with events seen by this process
        self._covered = 0  # of those, how many the last checkpoint covers
        # A short command's commits are batched into one checkpoint at its end.
        self._signed_at = time.monotonic()
        self._error: NSPError | None = None

    @property
    def pending(self) -> bool:
        return self._committed > self._covered

    def committed(self) -> None:
        """After a commit that appended events (``Database.after_audited_commit``); commits come
        from any thread of the process (a coordinator's and the caller's)."""
        with self._count:
            self._committed += 1
        if time.monotonic() - self._signed_at >= self._interval:
            self._try_sign()

    def due(self) -> None:
        """Sign when something is pending and the interval has passed (for loops that wait: a
        run renewing its lease, a job's coordinator). Never raises: a failure is kept for
        ``flush`` at the end, so the run or job it happens in still ends and is recorded."""
        if self.pending and time.monotonic() - self._signed_at >= self._interval:
            self._try_sign()

    def flush(self) -> None:
        """Sign now for whatever is pending; raise a failure kept from an earlier attempt."""
        self._raise_kept()
        if self.pending:
            self._try_sign()
            self._raise_kept()

    def _try_sign(self) -> None:
        # One signer per process at a time; a commit that lands while it signs stays pending.
        if not self._lock.acquire(blocking=False):
            return
        try:
            with self._count:
                covering = self._committed
            self._sign()
            self._covered = covering
        except NSPError as exc:
            self._error = exc
        except Exception as exc:  # a full disk, an unmounted witness: still not the change's failure
            self._error = ConfigError(f"could not witness the audit log: {exc}")
        finally:
            self._signed_at = time.monotonic()
            self._lock.release()

    def _raise_kept(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

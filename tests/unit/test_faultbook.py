"""shell/faultbook.py on its own: refusals shown until the same write succeeds, and their backoff."""

from __future__ import annotations

from jobwarden.core.plan import ChildFault
from jobwarden.shell.faultbook import MAX_RETRY_DELAY_SECONDS, RETRY_DELAY_SECONDS, FaultBook

QUOTA = ChildFault("Create", "Pod", "job-worker-0", "403 Forbidden: exceeded quota")


def test_failed_passes_back_off_exponentially_up_to_the_maximum_and_start_over_after_a_good_pass() -> None:
    book: FaultBook[str] = FaultBook()
    delays = [book.failed_pass("job", now=0.0) for _ in range(9)]
    assert delays[:4] == [RETRY_DELAY_SECONDS * f for f in (1, 2, 4, 8)]
    assert delays[-1] == MAX_RETRY_DELAY_SECONDS and book.failures("job") == 9
    book.pass_started("job")
    book.pass_succeeded("job")
    assert book.failures("job") == 0
    assert book.failed_pass("job", now=0.0) == RETRY_DELAY_SECONDS


def test_a_refused_write_is_skipped_inside_its_backoff_and_the_backoff_then_holds() -> None:
    book: FaultBook[str] = FaultBook()
    book.refused("job", QUOTA)
    book.failed_pass("job", now=100.0)  # retry due at 105
    fault = ("Create", "Pod", "job-worker-0")
    book.pass_started("job")  # a pod event's pass at 101
    assert book.backing_off("job", fault, now=101.0)
    assert not book.backing_off("job", ("Create", "Pod", "other"), now=101.0), "only the refused write"
    book.pass_succeeded("job")
    assert book.failures("job") == 1, "the skipped write keeps the pending retry's backoff"
    book.retry_due("job")  # the retry timer went off
    book.pass_started("job")
    assert not book.backing_off("job", fault, now=105.0)
    assert book.faults("job") == (QUOTA,), "shown until the same write succeeds"
    book.succeeded("job", "Create", "Pod", "job-worker-0")
    assert book.faults("job") == ()


def test_a_deleted_job_leaves_nothing_behind() -> None:
    book: FaultBook[str] = FaultBook()
    book.refused("job", QUOTA)
    book.failed_pass("job", now=0.0)
    book.backing_off("job", ("Create", "Pod", "job-worker-0"), now=1.0)
    book.forget("job")
    assert (book.faults("job"), book.failures("job"), book.deferred("job")) == ((), 0, False)

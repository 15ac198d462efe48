"""The login throttling policy: per account, per address, doubling waits, forgotten in time."""

from datetime import UTC, datetime, timedelta

from twin.api.throttle import (
    ADDRESS_FAILURES,
    FIRST_DELAY,
    FORGET_AFTER,
    FREE_FAILURES,
    LONGEST_DELAY,
    MAX_RECORDS,
    LoginThrottle,
    retry_after,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_an_account_waits_after_its_free_failures_and_the_wait_doubles_up_to_a_ceiling() -> None:
    throttle = LoginThrottle()
    now = T0
    for _ in range(FREE_FAILURES):
        assert throttle.wait("nurse", "10.0.0.1", now) is None
        throttle.failed("nurse", "10.0.0.1", now)
    assert throttle.wait("nurse", "10.0.0.1", now) == FIRST_DELAY
    throttle.failed("nurse", "10.0.0.1", now)
    assert throttle.wait("nurse", "10.0.0.2", now) == FIRST_DELAY * 2  # another address: the account still waits
    for _ in range(30):
        throttle.failed("nurse", "10.0.0.1", now)
    assert throttle.wait("nurse", "10.0.0.1", now) == LONGEST_DELAY
    assert throttle.wait("Nurse", "10.0.0.3", now) == LONGEST_DELAY  # names are not case-sensitive
    assert throttle.wait("nurse", "10.0.0.1", now + LONGEST_DELAY) is None
    throttle.succeeded("nurse")
    assert throttle.wait("nurse", "10.0.0.9", now) is None


def test_one_address_trying_many_names_is_stopped() -> None:
    throttle = LoginThrottle()
    for i in range(ADDRESS_FAILURES):
        assert throttle.wait(f"guess-{i}", "192.0.2.7", T0) is None
        throttle.failed(f"guess-{i}", "192.0.2.7", T0)
    assert throttle.wait("guess-next", "192.0.2.7", T0) is not None
    assert throttle.wait("guess-next", "192.0.2.8", T0) is None


def test_records_are_forgotten_in_time_and_bounded_in_number() -> None:
    throttle = LoginThrottle()
    for _ in range(FREE_FAILURES + 3):
        throttle.failed("nurse", "10.0.0.1", T0)
    assert throttle.wait("nurse", "10.0.0.1", T0 + FORGET_AFTER) is None
    for i in range(MAX_RECORDS + 50):
        throttle.failed(f"made-up-{i}", f"10.1.{i // 256}.{i % 256}", T0 + timedelta(seconds=i / 1000))
    assert len(throttle._accounts) <= MAX_RECORDS
    assert len(throttle._addresses) <= MAX_RECORDS


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after(timedelta(seconds=0.2)) == "1"
    assert retry_after(timedelta(seconds=2.01)) == "3"

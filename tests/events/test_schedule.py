"""The event retry schedule: parsing ``VIZOCHOK_EVENT_RETRY_SCHEDULE``, the default's backoff
and jitter, and the setting's two ways in."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vizochok_dispatch import Dispatcher, DispatchSettings, RetrySchedule, SettingsError
from vizochok_dispatch.events._schedule import DEFAULT_RETRY_SCHEDULE

ENV = "VIZOCHOK_EVENT_RETRY_SCHEDULE"


@pytest.mark.parametrize(
    ("text", "delays"),
    [
        ("30s,5m", (30.0, 300.0)),
        ("250ms", (0.25,)),
        ("1s,2m,3h,1d", (1.0, 120.0, 10800.0, 86400.0)),
        (" 1.5s , 0.5m ", (1.5, 30.0)),
        ("10S,2M", (10.0, 120.0)),
        ("0s", (0.0,)),
        ("30d", (30 * 86400.0,)),
        ("none", ()),
        ("NONE", ()),
    ],
)
def test_a_written_schedule_is_kept_exactly(text: str, delays: tuple[float, ...]) -> None:
    """Schedule: "30s,5m" is the delays before attempts 2, 3, … in ms s m h d, no jitter."""
    schedule = RetrySchedule.parse(text)
    assert schedule.delays == delays
    assert schedule.jitter == 0
    assert schedule.max_attempts == len(delays) + 1
    for attempt, delay in enumerate(delays, start=2):
        assert schedule.delay_before(attempt, lambda: 0.99) == delay


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("30s,,5m", "entry 2 is empty"),
        ("30s,", "entry 2 is empty"),
        ("30", "entry 1 '30' is not a delay: write a number and a unit"),
        ("5x", "entry 1 '5x' has the unknown unit 'x'"),
        ("30s,5 minutes", "entry 2 '5 minutes' has the unknown unit 'minutes'"),
        ("-5s", "entry 1 '-5s' is not a delay"),
        ("1e3s", "entry 1 '1e3s' is not a delay"),
        ("31d", "entry 1 '31d' is longer than 30d"),
        (",".join(["1s"] * 21), "at most 20 retries, not 21"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_setting_and_entry(text: str, says: str) -> None:
    """Schedule: a malformed entry is a SettingsError naming the setting, the entry and why."""
    with pytest.raises(SettingsError) as caught:
        RetrySchedule.parse(text)
    message = str(caught.value)
    assert message.startswith(f"{ENV} (event_retry_schedule)")
    assert says in message


def test_no_attempt_outside_the_schedule() -> None:
    """Schedule: no delay before attempt 1, nor past the last attempt."""
    schedule = RetrySchedule.parse("30s,5m")
    assert schedule.delay_before(1) is None
    assert schedule.delay_before(4) is None
    assert RetrySchedule.parse("none").delay_before(2) is None


def test_the_default_is_three_attempts_with_exponential_backoff() -> None:
    """Default: three attempts in all, 5 min then 12x that (1 h), spanning over an hour."""
    schedule = DEFAULT_RETRY_SCHEDULE
    assert schedule.max_attempts == 3
    assert schedule.delays == (300.0, 3600.0)
    assert schedule.delay_before(2, lambda: 0.0) == 300.0
    assert schedule.delay_before(3, lambda: 0.0) == 3600.0
    assert sum(schedule.delays) > 3600


def test_the_default_jitter_comes_from_the_random_source() -> None:
    """Default: each delay is lengthened by up to 25 %, as the injected random source says."""
    drawn: list[float] = []

    def rand() -> float:
        drawn.append(0.5)
        return 0.5

    assert DEFAULT_RETRY_SCHEDULE.delay_before(2, rand) == pytest.approx(300.0 * 1.125)
    assert DEFAULT_RETRY_SCHEDULE.delay_before(3, lambda: 0.999) == pytest.approx(3600 * 1.24975)
    assert drawn == [0.5]


def test_exponential_builds_the_delays() -> None:
    """Schedule: exponential(first, factor, attempts) gives first * factor**k before each retry."""
    schedule = RetrySchedule.exponential(first_seconds=2.0, factor=3.0, attempts=4, jitter=0.1)
    assert schedule.delays == (2.0, 6.0, 18.0)
    assert schedule.jitter == 0.1


def test_the_schedule_reads_as_written() -> None:
    """Schedule: str() writes the delays back in the setting's own form."""
    assert str(RetrySchedule.parse("30s,5m,1h,2d,250ms")) == "30s,5m,1h,2d,250ms"
    assert str(RetrySchedule.parse("none")) == "none"
    assert str(DEFAULT_RETRY_SCHEDULE) == "5m,1h (+ up to 25% jitter)"


# -- the setting --------------------------------------------------------------------------------


def test_the_setting_defaults_to_the_default_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting: unset, the settings carry the default schedule."""
    monkeypatch.delenv(ENV, raising=False)
    assert DispatchSettings().event_retry_schedule == DEFAULT_RETRY_SCHEDULE


def test_the_environment_variable_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting: VIZOCHOK_EVENT_RETRY_SCHEDULE="30s,5m" becomes that schedule."""
    monkeypatch.setenv(ENV, "30s,5m")
    assert DispatchSettings().event_retry_schedule == RetrySchedule((30.0, 300.0))


def test_a_bad_environment_variable_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting: a malformed VIZOCHOK_EVENT_RETRY_SCHEDULE stops startup with the reason."""
    monkeypatch.setenv(ENV, "30s,5parsecs")
    with pytest.raises(ValidationError) as caught:
        DispatchSettings()
    assert "event_retry_schedule" in str(caught.value)
    assert "entry 2 '5parsecs' has the unknown unit 'parsecs'" in str(caught.value)


def test_from_database_url_overrides_the_environment(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    """Setting: Dispatcher.from_database_url(url, event_retry_schedule=...) beats the variable."""
    monkeypatch.setenv(ENV, "1h")
    dispatcher = Dispatcher.from_database_url(sqlite_url, event_retry_schedule="30s,5m")
    assert dispatcher.settings.event_retry_schedule.delays == (30.0, 300.0)
    given = RetrySchedule((1.0,), jitter=0.5)
    assert DispatchSettings(event_retry_schedule=given).event_retry_schedule is given

"""Weeks as the H&M data uses them: Wednesday to Tuesday, identified by their Wednesday."""

from __future__ import annotations

import datetime as dt

import polars as pl

FIRST_WEEK = dt.date(2018, 9, 19)
"""The Wednesday of the first H&M week (its data starts Thursday 2018-09-20)."""

WEDNESDAY = 2  # date.weekday() of a Wednesday


def parse_week(value: str | dt.date) -> dt.date:
    """A week key ('YYYY-MM-DD', a Wednesday) as a date; a clear error for anything else."""
    try:
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"week {value!r} is not a date (YYYY-MM-DD, a Wednesday)") from None
    if day.weekday() != WEDNESDAY:
        raise ValueError(f"week {value} is not a Wednesday: weeks run Wednesday to Tuesday")
    return day


def week_of(day: dt.date) -> dt.date:
    """The Wednesday starting the week that contains `day`."""
    return day - dt.timedelta(days=(day.weekday() - WEDNESDAY) % 7)


def week_end(week: dt.date) -> dt.date:
    """The Tuesday ending `week` (inclusive)."""
    return week + dt.timedelta(days=6)


def shift_weeks(week: dt.date, n: int) -> dt.date:
    return week + dt.timedelta(weeks=n)


def week_expr(day: pl.Expr) -> pl.Expr:
    """Vectorised `week_of` for a Date expression (polars truncates weeks to Mondays)."""
    return day.dt.offset_by("-2d").dt.truncate("1w").dt.offset_by("2d")

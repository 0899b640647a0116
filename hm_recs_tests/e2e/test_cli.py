"""The `hm-recs` command answers a user's mistake with one line on stderr and exit status 2, before any run."""

import datetime as dt

import pytest

from hm_recs.cli import main
from hm_recs.core.weeks import FIRST_WEEK
from hm_recs.partitions import weekly_partitions


def mistake(capsys, argv: list[str]) -> str:
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own errors exit
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_a_missing_source_folder(capsys, tmp_path) -> None:
    err = mistake(
        capsys,
        [
            "run",
            "--source",
            str(tmp_path / "nowhere"),
            "--week",
            "2020-09-09",
            "--warehouse",
            str(tmp_path / "w.duckdb"),
        ],
    )
    assert "nowhere does not exist" in err


@pytest.mark.parametrize("week, expected", [("2020-09-10", "is not a Wednesday"), ("next week", "is not a date")])
def test_a_week_that_is_not_a_wednesday(capsys, tmp_path, week, expected) -> None:
    err = mistake(capsys, ["run", "--source", str(tmp_path), "--week", week])
    assert expected in err


def test_a_week_after_the_last_partition(capsys, tmp_path) -> None:
    last = dt.date.fromisoformat(weekly_partitions.get_last_partition_key())
    later = (last + dt.timedelta(weeks=1)).isoformat()
    err = mistake(
        capsys,
        ["backtest", "--source", str(tmp_path), "--weeks", f"{last},{later}", "--report", str(tmp_path / "r.json")],
    )
    assert f"week {later} is not a partition" in err and str(last) in err
    before = (FIRST_WEEK - dt.timedelta(weeks=1)).isoformat()
    assert "is not a partition" in mistake(capsys, ["run", "--source", str(tmp_path), "--week", before])


def test_argument_mistakes_are_one_line_too(capsys) -> None:
    assert "expected one argument" in mistake(capsys, ["run", "--week"])

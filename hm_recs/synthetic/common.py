"""What every part of the generator draws with: its seeded random streams, the weeks of the window, the seasonal
curves over them and small weighting helpers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from hm_recs.synthetic.config import SyntheticConfig

#: Independent random streams of the effects added after the first release (issue 18): each is seeded
#: from the config's seed and its own number, so an effect never shifts the draws of the others.
_STREAMS = {"catalogue": 1, "population": 2, "shifts": 3, "images": 4}


def stream(config: SyntheticConfig, name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([config.seed, _STREAMS[name]]))


@dataclass(frozen=True)
class Calendar:
    """Days and weeks of the data window; week ``w`` covers days ``7w .. 7w+6`` (Wed..Tue)."""

    day_strings: list[str]
    week_doy: np.ndarray  # day of year of each week's middle day (Saturday)

    @staticmethod
    def build(config: SyntheticConfig) -> Calendar:
        first = config.first_day
        days = [first + dt.timedelta(days=i) for i in range(7 * config.weeks)]
        mid_days = days[3::7]
        return Calendar(
            day_strings=[d.isoformat() for d in days],
            week_doy=np.array([d.timetuple().tm_yday for d in mid_days], dtype=np.float64),
        )


def _season_wave(doy: np.ndarray, peak_doy: float, strength: float) -> np.ndarray:
    """exp(strength * cos(distance to peak)), normalised to mean 1 over a year."""
    year = np.arange(1, 366, dtype=np.float64)
    norm = np.exp(strength * np.cos(2 * np.pi * (year - peak_doy) / 365.0)).mean()
    return np.exp(strength * np.cos(2 * np.pi * (doy - peak_doy) / 365.0)) / norm


def season_factors(config: SyntheticConfig, calendar: Calendar, strength: float) -> np.ndarray:
    """(3, weeks) factors for the all-year, summer and winter profiles."""
    doy = calendar.week_doy
    return np.stack(
        [
            np.ones_like(doy),
            _season_wave(doy, config.summer_peak_doy, strength),
            _season_wave(doy, config.winter_peak_doy, strength),
        ]
    )


def normalised(weights: tuple[float, ...] | np.ndarray) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return p / p.sum()


def logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def bump(x: np.ndarray, centre: float | np.ndarray, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - centre) / width) ** 2)


def categorical(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of a (rows, k) weight matrix (rows must have a positive sum)."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((cum <= u[:, None]).sum(axis=1), weights.shape[1] - 1)

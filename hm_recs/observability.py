"""Structured logs: one JSON object per line on stderr, for a log pipeline (CloudWatch, Loki, Datadog) to index.

`HM_RECS_LOG_FORMAT=json` makes `definitions.py` give its jobs `json_lines_logger` as their console logger
(`run_loggers`) and name it in their default run config (`run_logger_config`: Dagster starts a job's own loggers
only when the run config names them, and a launch's own run config is merged over the default); unset or
`text`, Dagster's coloured console logger stays (what a person reads in a terminal). The Dagster UI's event
log is structured either way; this is for the pods' stdout. The level defaults to DEBUG as Dagster's console
logger does, since Dagster's step and asset events (STEP_START, ASSET_MATERIALIZATION) are DEBUG records.

Each line carries what an operator filters on: `time` (UTC, ISO 8601), `level`, `message` (as the asset logged
it), `run_id`, `job`, `partition` (the week), `step` and `asset` where there is one, and `event` (Dagster's event
type: STEP_START, ASSET_MATERIALIZATION, STEP_FAILURE, ...); failures add `error` (the error's class and message)
and the step's `stack` where Dagster gives one. Nothing else of the record is dumped, so metadata values
(previews, plots) never flood the log and resource configuration (where an endpoint or bucket lives) is not
repeated on every line. Secrets are never in a log line: resources read them from the environment or the
instance role and never log them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import dagster as dg

from hm_recs.settings import LOG_FORMAT_ENV, setting

PARTITION_TAG = "dagster/partition"


def _error(event) -> tuple[str | None, str | None]:
    data = getattr(event, "event_specific_data", None)
    error = getattr(data, "error", None)
    if error is None:
        return None, None
    return error.message.strip(), "".join(error.stack or []) or None  # the message starts with the error's class


class JsonLineFormatter(logging.Formatter):
    """A Dagster log record as one compact JSON object (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "message": meta.get("orig_message") if meta.get("orig_message") is not None else record.getMessage(),
            "run_id": meta.get("run_id"),
            "job": meta.get("job_name"),
            "partition": (meta.get("job_tags") or {}).get(PARTITION_TAG),
            "step": meta.get("step_key"),
        }
        if event is not None:
            line["event"] = event.event_type_value
            asset_key = getattr(event, "asset_key", None)
            if asset_key is not None:
                line["asset"] = asset_key.to_user_string()
            error, stack = _error(event)
            if error:
                line["error"] = error
                line["stack"] = stack
        if record.exc_info:
            line["error"] = line.get("error") or f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            line["stack"] = self.formatException(record.exc_info)
        return json.dumps({k: v for k, v in line.items() if v is not None}, default=str)


@dg.logger(
    {
        "log_level": dg.Field(str, is_required=False, default_value="DEBUG"),
        "name": dg.Field(str, is_required=False, default_value="hm_recs"),
    },
    description="One JSON object per log line on stderr (HM_RECS_LOG_FORMAT=json).",
)
def json_lines_logger(init_context) -> logging.Logger:
    logger = logging.Logger(init_context.logger_config["name"], level=init_context.logger_config["log_level"].upper())
    handler = logging.StreamHandler()  # stderr, as Dagster's console logger
    handler.setFormatter(JsonLineFormatter())
    logger.addHandler(handler)
    return logger


def _is_json(log_format: str | None) -> bool:
    value = (log_format if log_format is not None else setting(LOG_FORMAT_ENV, "text")).strip().lower()
    if value not in ("", "text", "json"):
        raise ValueError(f"{LOG_FORMAT_ENV}={value!r}: expected 'json' or 'text'")
    return value == "json"


def run_loggers(log_format: str | None = None) -> dict[str, dg.LoggerDefinition] | None:
    """The loggers of the code location's jobs: `{"console": json_lines_logger}` for the json format, None
    (Dagster's default console logger) for text. `log_format` None reads HM_RECS_LOG_FORMAT."""
    return {"console": json_lines_logger} if _is_json(log_format) else None


def run_logger_config(log_format: str | None = None) -> dict | None:
    """The default run config that starts `run_loggers`' console logger (None for text)."""
    return {"loggers": {"console": {"config": {}}}} if _is_json(log_format) else None

"""The library inside an Airflow task process: output to the log at its true level, crashes that fail.

Airflow records everything a task process writes to stderr at ERROR level. The library draws
tqdm bars on stderr (what a CLI user wants) and MLflow announces its table creation there, so a
successful task would show dozens of red ERROR lines. Inside a task, stderr is read line by line
and logged at INFO (or at the level a line names, for libraries that print their own log
records); a bar's in-place refreshes are kept to one line every ``PROGRESS_EVERY_S`` seconds per
bar, plus its final state.

A worker runs several tasks at once (LocalExecutor: ``parallelism``; Celery: worker concurrency),
and torch in each would start one thread per core: on 2 cores, a transcription beside a vocal task
ran 10x slower, not 2x (BENCHMARKS.md). Library calls get the worker's cores divided by its task
slots as their thread budget (``LIVI_TASK_THREADS`` overrides it).

Parsing the DAG file at task start leaves Airflow's Python-level SIGSEGV handler installed; a
crash in native code (numba, torch, a codec) then re-executes the faulting instruction forever and
the task spins at full CPU instead of failing. Library calls restore the default action, with
faulthandler's traceback in the log first, so the task fails and its retry policy applies.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import logging
import re
import signal
import sys
import threading
import time
import warnings
from typing import Iterator

from livi_tasks.core.threads import budget_from_environment, limit_threads, usable_cores

PROGRESS_EVERY_S = 30.0
# Cursor movements tqdm uses to redraw nested bars; meaningless in a log.
ANSI_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A logging record some library printed itself ("2026/12/01 03:24:50 INFO mlflow...: ..."): its level
# is the one in the line; anything else on stderr is informational.
PRINTED_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
PRINTED_LEVEL = re.compile(rf"^[^a-z]{{0,30}}\b({'|'.join(PRINTED_LEVELS)})\b")
# tqdm's counter and elapsed time: "n/total [00:12" or, without a total, "n<unit> [00:12".
PROGRESS_METER = re.compile(r"(?:\d/[\d.]+[kMG]?|\d[a-zA-Z/]*) \[\d+:\d\d")


class LogLineWriter(io.TextIOBase):
    """A text stream that logs each line, and progress bars' redraws at most once per ``every_s``."""

    def __init__(self, logger: logging.Logger, level: int = logging.INFO, every_s: float = PROGRESS_EVERY_S) -> None:
        super().__init__()
        self.logger = logger
        self.level = level
        self.every_s = every_s
        self._pending = ""
        self._latest_meter = ""
        self._last_meter_logged = float("-inf")
        self._writing = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        # A handler that writes to sys.stderr would call back into this writer: drop the echo.
        if self._writing:
            return len(text)
        self._writing = True
        try:
            self._consume(text)
        finally:
            self._writing = False
        return len(text)

    def _consume(self, text: str) -> None:
        *lines, self._pending = re.split(r"[\r\n]", self._pending + text)
        for line in lines:
            self._line(ANSI_CONTROL.sub("", line).strip())

    def _line(self, text: str) -> None:
        if not text:
            return
        meter = PROGRESS_METER.search(text)
        if meter:
            # A bar's redraw: keep the latest, log it when time has passed, before the next message
            # or at the end (nested bars finish many times a second: each is a redraw too).
            now = time.monotonic()
            if now - self._last_meter_logged < self.every_s:
                self._latest_meter = text
                return
            self._last_meter_logged = now
        elif self._latest_meter:
            # A message after a bar: the bar's last state first (a bar without total ends so).
            self.logger.log(self.level, "%s", self._latest_meter)
        self._latest_meter = ""
        printed = PRINTED_LEVEL.match(text)
        level = PRINTED_LEVELS[printed.group(1)] if printed else self.level
        self.logger.log(level, "%s", text)

    def close(self) -> None:
        """Log what is left: an unterminated line, else the last redraw not yet logged."""
        final = ANSI_CONTROL.sub("", self._pending).strip() or self._latest_meter
        self._pending = self._latest_meter = ""
        if final:
            self.logger.log(self.level, "%s", final)
        super().close()


def task_slots() -> int:
    """How many tasks this worker runs at once: Celery's worker concurrency, else the parallelism."""
    from airflow.configuration import conf

    if "Celery" in conf.get("core", "executor", fallback=""):
        return conf.getint("celery", "worker_concurrency", fallback=16)
    return conf.getint("core", "parallelism", fallback=32)


def task_threads(cores: int | None = None, slots: int | None = None) -> int:
    """Threads one task's torch and BLAS may use: the worker's cores shared among its task slots."""
    return budget_from_environment() or max(1, (cores or usable_cores()) // (slots or task_slots()))


def apply_task_threads(logger: logging.Logger) -> None:
    """Set the task's thread budget before the library imports torch."""
    threads = task_threads()
    limit_threads(threads)
    logger.info("threads for this task: %d (LIVI_TASK_THREADS, else cores / task slots)", threads)


def crash_fails_task() -> None:
    """A segfault in native code ends the process (traceback first) rather than looping in a handler."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
    if sys.__stderr__ is not None:
        faulthandler.enable(file=sys.__stderr__)


@contextlib.contextmanager
def running_library(logger: logging.Logger) -> Iterator[None]:
    """Run library code in a task: its share of the cores, its stderr (progress bars, third-party
    notices) logged at INFO, warnings at WARNING, a native crash failing the task."""
    crash_fails_task()
    apply_task_threads(logger)

    def log_warning(message, category, filename, lineno, file=None, line=None) -> None:
        logger.warning("%s", warnings.formatwarning(message, category, filename, lineno, line).strip())

    writer = LogLineWriter(logger)
    try:
        with contextlib.redirect_stderr(writer), warnings.catch_warnings():
            warnings.showwarning = log_warning  # at WARNING, not as stderr text
            yield
    finally:
        writer.close()

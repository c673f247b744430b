"""Per-rule logging: every rule writes its own log file, long steps log their progress, and
a failure names the input it failed on (or, when the error names none, all inputs)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence


class Progress:
    """Log ``done / total`` items and the rate of a long streamed step.

    A line is logged when at least ``interval_s`` seconds have passed since the last one,
    and always when the step completes, so a log shows how far a running job is and a
    killed job's log shows where it stopped.

    Parameters
    ----------
    logger : logging.Logger
        Where the lines go (the stage module's logger; ``rule_log`` routes it to the
        rule's log file).
    what : str
        The step, e.g. ``"registration"``.
    total : int
        Items in the whole step.
    unit : str
        Name of the items, e.g. ``"frames"``.
    interval_s : float
        Least time between two lines, s; 0 logs every update.

    Examples
    --------
    >>> progress = Progress(logging.getLogger("demo"), "extraction", 300, interval_s=0)
    >>> for _ in range(3):
    ...     progress.update(100)
    >>> progress.done
    300
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        total: int,
        *,
        unit: str = "frames",
        interval_s: float = 30.0,
    ) -> None:
        self.logger, self.what, self.total, self.unit = logger, what, int(total), unit
        self.interval_s = interval_s
        self.done = 0
        self._start = self._last = time.monotonic()

    def update(self, n: int) -> None:
        """Count ``n`` more items done; log if due."""
        self.done += int(n)
        now = time.monotonic()
        if self.done < self.total and now - self._last < self.interval_s:
            return
        self._last = now
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        self.logger.info(
            "%s: %d/%d %s (%.0f%%), %.1f %s/s, %.0f s elapsed",
            self.what,
            self.done,
            self.total,
            self.unit,
            100.0 * self.done / max(self.total, 1),
            rate,
            self.unit,
            elapsed,
        )


def _failed_inputs(err: BaseException, inputs: Sequence[str]) -> list[str]:
    """The inputs that ``err`` (or an exception it was raised from) names."""
    texts = []
    seen: BaseException | None = err
    for _ in range(10):  # the chain of causes; bounded in case it loops
        if seen is None:
            break
        texts.append(f"{seen}\n{getattr(seen, 'filename', None) or ''}")
        seen = seen.__cause__ or seen.__context__
    text = "\n".join(texts)
    # whole paths only: "movie.bin" must not match inside "movie.bin.json" (a sentence's
    # closing dot is fine)
    return [
        p
        for p in inputs
        if any(
            re.search(rf"(?<![\w./-]){re.escape(q)}(?!\.?[\w/-])", text)
            for q in (p, os.path.abspath(p))
        )
    ]


class _ThreadTagFormatter(logging.Formatter):
    """Prefix the messages of worker threads with the thread's name (e.g. a rule that
    registers several planes in parallel names each line's plane)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        if record.threadName == "MainThread":
            return line
        return line.replace(f"{record.name}: ", f"{record.name}: [{record.threadName}] ", 1)


@contextlib.contextmanager
def rule_log(
    log_path: str | os.PathLike, *, rule: str, inputs: Sequence[str] = ()
) -> Iterator[logging.Logger]:
    """Send logging (and warnings) of one rule to ``log_path``; name the inputs on failure.

    On an exception the log (and stderr) says ``rule R failed on input X: error`` when the
    error names one or more of ``inputs``, else ``rule R failed on inputs a, b: error``.
    """
    inputs = [os.fspath(p) for p in inputs]
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(_ThreadTagFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    logger = logging.getLogger(f"rule.{rule}")
    logger.info("rule %s started; inputs: %s", rule, ", ".join(inputs) or "none")
    try:
        yield logger
    except BaseException as err:
        named = _failed_inputs(err, inputs)
        where = (
            f"input{'s' if len(named) > 1 else ''} {', '.join(named)}"
            if named
            else f"inputs {', '.join(inputs) or 'none'}"
        )
        logger.exception("rule %s failed on %s: %s", rule, where, err)
        print(f"rule {rule} failed on {where}: {err}", file=sys.stderr)
        raise
    else:
        logger.info("rule %s finished", rule)
    finally:
        root.removeHandler(handler)
        handler.close()

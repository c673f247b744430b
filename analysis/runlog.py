"""Per-rule logging: every rule writes its own log file, and a failure names its inputs."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def rule_log(
    log_path: str | os.PathLike, *, rule: str, inputs: Sequence[str] = ()
) -> Iterator[logging.Logger]:
    """Send logging (and warnings) of one rule to ``log_path``; log the inputs on failure."""
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    logger = logging.getLogger(f"rule.{rule}")
    logger.info("rule %s started; inputs: %s", rule, ", ".join(map(str, inputs)) or "none")
    try:
        yield logger
    except BaseException as err:
        logger.exception(
            "rule %s failed (%s) on inputs: %s", rule, err, ", ".join(map(str, inputs))
        )
        print(f"rule {rule} failed on inputs {list(map(str, inputs))}: {err}", file=sys.stderr)
        raise
    else:
        logger.info("rule %s finished", rule)
    finally:
        root.removeHandler(handler)
        handler.close()

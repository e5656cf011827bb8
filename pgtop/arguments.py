"""argparse types the subcommands share: a bad value exits 2 with the usage and one line."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive(what: str, number: Callable[[str], float] = int) -> Callable[[str], float]:
    """A number above zero, whole by default (a PID, a count; `float` for a duration),
    named `what` in the error."""

    def parse(text: str) -> float:
        try:
            value = number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what}: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"invalid {what}: {text!r}")
        return value

    return parse


def port_number(text: str) -> int:
    """A TCP port, 1..65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 1..65535")
    return port

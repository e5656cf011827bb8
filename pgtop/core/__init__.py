"""The pure postmaster model: (state, event, now) -> (state, actions).

Nothing here touches the world: no os, signal, subprocess, socket, select, threading, time,
yaml, textual or psutil. `tests/core/test_purity.py` proves it.

Entry points: `initial_state(config, now)`, `step(state, event, now)`,
`next_deadline(state, now)` and `accepting_connections(state)`.
"""

from .config import Config
from .connections import (
    accepting_connections,
    can_accept_connections,
    cancel_request_outcome,
    refusal,
)
from .serverloop import next_deadline
from .state import Child, State, initial_state
from .step import step

__all__ = [
    "Child",
    "Config",
    "State",
    "accepting_connections",
    "can_accept_connections",
    "cancel_request_outcome",
    "initial_state",
    "next_deadline",
    "refusal",
    "step",
]

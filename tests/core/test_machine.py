"""Machine.update: the core's one way to change the state within a step."""

from __future__ import annotations

import dataclasses

import pytest

from pgtop.core.config import Config
from pgtop.core.machine import Machine
from pgtop.core.state import initial_state
from pgtop.core.vocabulary import PMState, Shutdown


def test_update_changes_the_named_fields_and_leaves_the_old_state_alone() -> None:
    before = initial_state(Config(), now=100.0)
    m = Machine(before, now=101.0)
    m.update(pm_state=PMState.RUN, shutdown=Shutdown.SMART)
    assert (m.s.pm_state, m.s.shutdown) == (PMState.RUN, Shutdown.SMART)
    assert (before.pm_state, before.shutdown) == (PMState.INIT, Shutdown.NO)
    untouched = [f.name for f in dataclasses.fields(before) if f.name not in ("pm_state", "shutdown")]
    assert all(getattr(m.s, name) is getattr(before, name) for name in untouched)


def test_the_updated_state_is_as_frozen_as_the_first() -> None:
    m = Machine(initial_state(Config(), now=100.0), now=101.0)
    m.update(fatal_error=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.s.fatal_error = False  # type: ignore[misc]
    assert m.s == dataclasses.replace(initial_state(Config(), now=100.0), fatal_error=True)


def test_a_misspelled_field_is_an_error_not_a_new_attribute() -> None:
    m = Machine(initial_state(Config(), now=100.0), now=101.0)
    with pytest.raises(TypeError, match="State has no field pm_sate"):
        m.update(pm_sate=PMState.RUN)
    assert not hasattr(m.s, "pm_sate")

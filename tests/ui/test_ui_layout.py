"""The dashboard's layout at the widths people open it at: a default 80-column terminal, a
presenter's large font, a wide screen."""

from __future__ import annotations

from ui_pilot import drive, painted, wait_for

from pgtop.ui import fake
from pgtop.ui.app import OVERVIEW_WIDTH
from pgtop.ui.widgets.cluster_facts import ClusterFacts, FactLine
from pgtop.ui.widgets.state_diagram import StateDiagram


def test_a_narrow_screen_leaves_out_the_state_diagram_so_the_facts_keep_their_width(make_app):
    """At 80 columns the facts panel was squeezed to one column between the banner and the
    state diagram. Below OVERVIEW_WIDTH the diagram goes; above, it comes back."""
    app = make_app()

    async def scenario(pilot):
        app.post_snapshot(fake.snapshot_of(fake.running_state()))
        facts, diagram = app.query_one(ClusterFacts), app.query_one(StateDiagram)
        for width, diagram_shown in ((80, False), (OVERVIEW_WIDTH - 1, False), (OVERVIEW_WIDTH, True), (80, False)):
            await pilot.resize_terminal(width, 30)
            await wait_for(pilot, lambda shown=diagram_shown: (diagram.size.width > 0) == shown)
            await pilot.pause()
            assert "connsAllowed ALLOW_ALL_CONNS" in "\n".join(painted(line) for line in facts.query(FactLine))
            assert ("STOP_BACKENDS" in painted(diagram)) == diagram_shown

    drive(app, scenario, size=(80, 30))

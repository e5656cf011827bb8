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


def test_at_80_columns_the_footer_still_shows_help_and_quit(make_app):
    """The footer's keys ran off an 80-column screen before "? Help" and "Q Quit", the two a
    newcomer looks for. A narrow screen gets the compact footer, without the palette's hint
    (ctrl+p still opens it); a wide one gets both back."""
    app = make_app()

    def shown() -> set[str]:
        width = app.size.width
        return {key.description for key in app.query("FooterKey") if key.region.width and key.region.right <= width}

    async def scenario(pilot):
        for width, palette in ((80, False), (160, True), (80, False)):
            await pilot.resize_terminal(width, 30)
            await wait_for(pilot, lambda palette=palette: ("palette" in shown()) == palette)
            assert {"Reload", "Kill", "Help", "Quit"} <= shown()

    drive(app, scenario, size=(80, 30))

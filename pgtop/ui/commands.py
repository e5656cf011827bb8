"""The command palette's pgtop commands: the same actions as the keys."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class PgtopCommands(Provider):
    """Every dashboard binding with an id, titled by its tooltip, run as its action."""

    def _commands(self) -> list[tuple[str, str, str]]:
        """(title, action, key) for each of the app's own bindings."""
        app = self.app
        return [(binding.tooltip or binding.description, binding.action, app.key_of(binding)) for binding in app.BINDINGS]

    async def discover(self) -> Hits:
        for title, action, key in self._commands():
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=f"key: {key}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, key in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=f"key: {key}")

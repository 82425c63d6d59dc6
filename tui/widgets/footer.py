"""The key footer, rebuilt only when the keys it shows change."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    """Textual's Footer rebuilds all its keys (a dozen widgets, each styled anew) at every
    bindings signal of its screen: focus moving, the screen stack changing. The fleet screen's
    first paint sent five, for the same keys every time, and the rebuilds delayed the table's
    first frame. This one rebuilds when what it would show differs from what it shows. It
    leans on Footer's `_bindings_ready` (Textual 8.x, pinned by uv.lock); the snapshot tests
    show the footer if that changes."""

    _shown: Any = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._rebuild_if_changed)

    def _keys(self) -> Any:
        return (
            self.compact,
            self.show_command_palette,
            tuple(
                (
                    binding.key,
                    binding.key_display,
                    binding.description,
                    binding.action,
                    binding.group,
                    binding.show,
                    enabled,
                    tooltip,
                )
                for _node, binding, enabled, tooltip in self.screen.active_bindings.values()
            ),
        )

    async def _rebuild_if_changed(self) -> None:
        if not self.is_attached:
            return
        keys = self._keys()
        if keys == self._shown:
            return
        self._shown = keys
        await self.recompose()

"""Reading a rendered state machine (plain JSON, no SDK): its states at any depth.

Independent stages run in Parallel branches, so a stage's state may sit inside one; every
reader of a definition (request checks, `resume`, tests) walks it through here.
"""

from __future__ import annotations

from typing import Any, Iterator


def walk(asl: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, state) for every state, Parallel branches and Map item processors included."""
    for name, state in (asl.get("States") or {}).items():
        yield name, state
        for branch in state.get("Branches", ()):
            yield from walk(branch)
        if "ItemProcessor" in state or "Iterator" in state:
            yield from walk(state.get("ItemProcessor") or state["Iterator"])


def states(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state by name (names are unique across a state machine)."""
    return dict(walk(asl))

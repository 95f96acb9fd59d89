"""A fan-out's items and group, as the spec carries them (``steps/fanout.py`` builds, expands and
names them; ``spec.ItemRef`` is a member stage's reference to its item)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

INLINE_LIMIT = 40  # an inline Map runs at most 40 items at once; more use a Distributed Map


@dataclass(frozen=True)
class Item:
    """One fan-out item known at build time: its value, a short key that names its copies, jobs
    and folders ([a-z0-9], at most 8 characters), and its model package groups (one per item)."""

    value: str
    key: str
    package_groups: Mapping[str, str] = field(default_factory=dict)  # register stage -> its group


@dataclass(frozen=True)
class FanOut:
    """A group of stages run once per item (``steps/fanout.py`` builds, expands and names it).

    ``source``: ``values`` (a column's listed values), ``column`` (its values read at run time by
    the ``items_stage``), ``s3_prefixes`` (listed), ``s3_listing`` (objects under a prefix, run time).
    After ``expand`` (SageMaker, local) ``copies`` maps each copy to (member, item key)."""

    name: str
    stages: tuple[str, ...]
    source: str
    items: tuple[Item, ...] = ()
    column: str | None = None
    s3_listing: str | None = None
    items_stage: str | None = None
    registry: str = "group_per_item"
    tolerated_failure_percentage: int = 0
    max_concurrency: int = 0
    copies: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.source in ("values", "s3_prefixes")

    @property
    def distributed(self) -> bool:
        """A Distributed Map: items read at run time, more than an inline Map runs at once (40),
        or failures to tolerate (an inline Map fails with its first failed item)."""
        return not self.known or len(self.items) > INLINE_LIMIT or self.tolerated_failure_percentage > 0

    def item_of(self, stage: str) -> Item | None:
        """The item of an expanded copy (None for a stage outside the fan-out)."""
        if stage not in self.copies:
            return None
        key = self.copies[stage][1]
        return next(i for i in self.items if i.key == key)

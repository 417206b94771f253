"""How much YAML govrun reads, and composing a document within it.

YAML lets a file of a few hundred bytes stand for billions of values (nine anchors of nine
aliases each: 9**9), and PyYAML composes recursively, so deep nesting ends in a
RecursionError. Every YAML file a user hands govrun is composed here, counting as it goes:
more than :data:`MAX_VALUES` nodes or :data:`MAX_DEPTH` levels stops it at the line where
the count ran over. Aliases are not expanded here (an alias is the node it names); the
reader counts them when it turns nodes into data (``reader._Converter``).

libyaml's parser is used when PyYAML has it (five times faster than the pure-Python one,
which is the fallback); nodes are composed in Python either way, so that they can be
counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from yaml.composer import Composer
from yaml.error import Mark
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import Node
from yaml.resolver import Resolver

MAX_VALUES = 100_000
"""Most values (YAML nodes: keys, scalars, lists, mappings) a document may hold, and may
expand to through its aliases. A manifest holds hundreds; a thousand-turn model script
25,000. 100,000 compose in about half a second and a few tens of MB."""

MAX_DEPTH = 100
"""Deepest nesting of lists and mappings. A manifest needs about six; the trace's JSON
writer refuses more than 255 levels and the manifest is recorded a level or two deep."""

MAX_TEXT = 8 << 20
"""Most characters of text a document may expand to through its aliases (a few anchors of a
long string, each used many times, make gigabytes in the trace)."""


TOO_DEEP = (
    f"nests lists and mappings more than {MAX_DEPTH} levels deep; govrun reads at most {MAX_DEPTH}"
)


class LimitExceeded(Exception):
    """A document is larger or deeper than govrun reads; ``mark`` is where it ran over."""

    def __init__(self, mark: Mark | None, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


@dataclass(frozen=True)
class Composed:
    """A document's root node (None when it is empty) and where its first alias is."""

    root: Node | None
    first_alias: Mark | None


class _Counting(Composer):
    """PyYAML's composer, counting nodes and depth, and noting the first alias."""

    def _start_counting(self) -> None:
        self.nodes = 0
        self.depth = 0
        self.first_alias: Mark | None = None

    def compose_node(self, parent: Node | None, index: object) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if self.first_alias is None:
                self.first_alias = event.start_mark
            return super().compose_node(parent, index)
        self.nodes += 1
        if self.nodes > MAX_VALUES:
            raise LimitExceeded(
                event.start_mark,
                f"holds more than {MAX_VALUES:,} values; govrun reads at most that many",
            )
        if not isinstance(event, SequenceStartEvent | MappingStartEvent):
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise LimitExceeded(event.start_mark, TOO_DEEP)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _PythonComposer(_Counting, yaml.SafeLoader):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._start_counting()


_COMPOSERS: list[type[_Counting]] = [_PythonComposer]

if yaml.__with_libyaml__:  # pragma: no branch - PyYAML's wheels ship libyaml
    from yaml._yaml import CParser

    class _LibyamlComposer(_Counting, CParser, Resolver):
        """libyaml's events, composed by PyYAML's Python composer (ahead of CParser's own in
        the method order), so that the counting above applies."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            Resolver.__init__(self)
            self._start_counting()

        def dispose(self) -> None:
            pass

    _COMPOSERS.insert(0, _LibyamlComposer)


def compose(text: str) -> Composed:
    """One YAML document's nodes. Raises :class:`LimitExceeded`, or ``yaml.YAMLError`` for
    text that is not YAML (also ``RecursionError`` if Python's stack is nearly used up)."""
    composer = _COMPOSERS[0](text)
    try:
        root = composer.get_single_node()
    finally:
        composer.dispose()
    return Composed(root, composer.first_alias)

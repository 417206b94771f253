"""Tool calls written as text: which forms are found, and which text is an answer."""

from __future__ import annotations

import pytest

from govrun.runtime.models.text_calls import TextCall, find_text_calls
from govrun.runtime.tools.definitions import minimal, signature, unbounded

READ = TextCall("read_file", '{"path":"notes.md"}')


@pytest.mark.parametrize(
    ("text", "form", "calls"),
    [
        ('{"name": "read_file", "arguments": {"path": "notes.md"}}', "json", (READ,)),
        ('```json\n{"name": "read_file", "arguments": {"path": "notes.md"}}\n```', "json", (READ,)),
        (
            'Let me look.\n```\n{"name": "read_file", "parameters": {"path": "notes.md"}}\n```\n',
            "json",
            (READ,),
        ),
        (
            '{"name": "read_file", "arguments": "{\\"path\\": 1}"}',
            "json",
            (TextCall("read_file", '{"path": 1}'),),
        ),
        (
            '[{"name": "read_file", "arguments": {"path": "notes.md"}}, '
            '{"name": "ls", "arguments": {}}]',
            "json",
            (READ, TextCall("ls", "{}")),
        ),
        (
            '<tool_call>\n{"name": "read_file", "arguments": {"path": "notes.md"}}\n</tool_call>',
            "hermes",
            (READ,),
        ),
        (  # cut off before the closing tag
            'ok <tool_call>{"name": "read_file", "arguments": {"path": "notes.md"}}',
            "hermes",
            (READ,),
        ),
    ],
)
def test_text_call_forms_are_found(text: str, form: str, calls: tuple[TextCall, ...]) -> None:
    found = find_text_calls(text)
    assert found is not None
    assert (found.format, found.calls) == (form, calls)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "Done — the summary is in report.md.",
        'The API takes {"name": "x", "arguments": {}, "extra": 1} as its body.',
        '```json\n{"name": 3, "arguments": {}}\n```',
        '```json\n{"status": "ok"}\n```',
        "<tool_call>not json</tool_call>",
    ],
)
def test_ordinary_answers_hold_no_text_calls(text: str | None) -> None:
    assert find_text_calls(text) is None


SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "maxLength": 4096, "description": "Where.", "title": "Path"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 9},
        "mode": {"enum": ["a", "w"], "default": "w"},
        "maxLength": {"type": "integer", "minimum": 0},
    },
    "required": ["path"],
}


def test_unbounded_drops_length_bounds_at_every_depth_but_not_a_property_so_named() -> None:
    assert unbounded(SCHEMA) == {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "Where.", "title": "Path"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["a", "w"], "default": "w"},
            "maxLength": {"type": "integer", "minimum": 0},
        },
        "required": ["path"],
    }


def test_minimal_keeps_the_shape() -> None:
    assert minimal(SCHEMA) == {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["a", "w"]},
            "maxLength": {"type": "integer"},
        },
        "required": ["path"],
    }


def test_a_signature_lists_required_arguments_first() -> None:
    assert signature("t", SCHEMA) == (
        't(path: string, tags?: array of string, mode?: "a" | "w", maxLength?: integer)'
    )

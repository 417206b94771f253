"""Verification checks, a union tagged by the ``check`` key.

The same kinds serve a tool's per-call ``verify:`` and the run's ``success:``; only
``final_answer_matches`` is success-only, because a single tool call has no final answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator

from govrun.runtime.manifest.fields import CallableRef, Integer, Regex, Section, Sha256, Text
from govrun.runtime.manifest.problems import message

_PATH = "File path, relative to the manifest folder; may use {args.NAME} placeholders."
_FRESH = (
    "success only: the file must have been created or changed during this run; one that "
    "existed before it, unchanged, fails the check (its evidence says so either way)."
)


class _Check(Section):
    """Fields every check has."""

    id: Text | None = Field(None, description="Name of the check in verification events.")
    required: bool = Field(
        True, description="If false, a failure is recorded as evidence but fails nothing."
    )


class FileExistsCheck(_Check):
    """The file exists."""

    check: Literal["file_exists"] = Field(description="Check kind.")
    path: Text = Field(description=_PATH)
    fresh: bool = Field(False, description=_FRESH)


class FileSha256Check(_Check):
    """The file's SHA-256 is recorded as evidence, and must equal `sha256` when given."""

    check: Literal["file_sha256"] = Field(description="Check kind.")
    path: Text = Field(description=_PATH)
    fresh: bool = Field(False, description=_FRESH)
    sha256: Sha256 | None = Field(
        None, description="Expected digest; absent means the hash the call produced."
    )


class FileContainsCheck(_Check):
    """The file's text matches a regular expression."""

    check: Literal["file_contains"] = Field(description="Check kind.")
    path: Text = Field(description=_PATH)
    fresh: bool = Field(False, description=_FRESH)
    pattern: Regex = Field(description="Regular expression (RE2 syntax) searched in the file.")


class ExitCodeCheck(_Check):
    """The command exited with this code."""

    check: Literal["exit_code"] = Field(description="Check kind.")
    equals: Integer = Field(0, description="Expected exit code.")


class OutputMatchesCheck(_Check):
    """The tool's output matches a regular expression."""

    check: Literal["output_matches"] = Field(description="Check kind.")
    pattern: Regex = Field(description="Regular expression (RE2 syntax) searched in the output.")


class OutputSchemaCheck(_Check):
    """The tool's output parses as JSON that is valid against a JSON Schema."""

    check: Literal["output_schema"] = Field(description="Check kind.")
    json_schema: dict[str, Any] = Field(alias="schema", description="A JSON Schema.")

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        import jsonschema  # only a manifest with this check needs it (~50 ms to import)

        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(part) for part in exc.path) or "its top level"
            raise message(
                f"expected a valid JSON Schema; got one where {where} is invalid: {exc.message}"
            ) from None
        return schema


class PythonCheck(_Check):
    """A Python function decides, given the call's evidence."""

    check: Literal["python"] = Field(description="Check kind.")
    function: CallableRef = Field(description="Callable as 'module.path:function'.")


class FinalAnswerMatchesCheck(_Check):
    """The agent's final answer matches a regular expression (only under `success:`)."""

    check: Literal["final_answer_matches"] = Field(description="Check kind.")
    pattern: Regex = Field(description="Regular expression (RE2 syntax) searched in the answer.")


Check = Annotated[
    FileExistsCheck
    | FileSha256Check
    | FileContainsCheck
    | ExitCodeCheck
    | OutputMatchesCheck
    | OutputSchemaCheck
    | PythonCheck
    | FinalAnswerMatchesCheck,
    Field(discriminator="check"),
]
"""Any check; pydantic picks the class by the ``check`` key."""

CHECK_KINDS: tuple[str, ...] = tuple(
    get_args(member.model_fields["check"].annotation)[0] for member in get_args(get_args(Check)[0])
)
SUCCESS_ONLY_CHECKS: tuple[str, ...] = ("final_answer_matches",)

FILE_CHECKS = (FileExistsCheck, FileSha256Check, FileContainsCheck)
"""Checks about one file: they may require it ``fresh`` (success checks only)."""

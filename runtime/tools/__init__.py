"""Tools the model can call: builtin fs/shell/http tools and Python callables.

Every tool validates its arguments against a closed model, checks its scope before any
side effect, and returns a ``ToolResult`` with evidence instead of raising. Builtins are
looked up by short name (``build_builtin("fs.write", ...)``) and imported lazily.
"""

from govrun.runtime.tools.base import (
    BUILTIN_TOOLS,
    ArgsModel,
    BaseTool,
    ScopeViolation,
    Tool,
    ToolConfigError,
    ToolFailure,
    ToolResult,
    ToolTimeout,
    UnknownToolError,
    build_builtin,
    clip,
    parameters_schema,
    parse_arguments,
)
from govrun.runtime.tools.pycall import PythonTool, load_python_tool

__all__ = [
    "BUILTIN_TOOLS",
    "ArgsModel",
    "BaseTool",
    "PythonTool",
    "ScopeViolation",
    "Tool",
    "ToolConfigError",
    "ToolFailure",
    "ToolResult",
    "ToolTimeout",
    "UnknownToolError",
    "build_builtin",
    "clip",
    "load_python_tool",
    "parameters_schema",
    "parse_arguments",
]

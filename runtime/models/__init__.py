"""Model adapters by short name: ``provider: openai`` or ``provider: scripted``.

``build_model`` turns the manifest's ``model`` section into a :class:`~govrun.runtime.ports.Model`.
Adapters are imported when built, so importing this package never loads ``openai``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from govrun.runtime.errors import GovrunError
from govrun.runtime.models.pricing import Prices, cost_usd
from govrun.runtime.ports import Model

__all__ = ["PROVIDERS", "ModelSettings", "build_model", "cost_usd"]


class ModelSettings(Protocol):
    """What ``build_model`` reads from the manifest's ``model`` section (``ModelConfig``)."""

    @property
    def provider(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def api_key_env(self) -> str | None: ...
    @property
    def script(self) -> str | None: ...
    @property
    def params(self) -> BaseModel | Mapping[str, Any]: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def pricing(self) -> Prices | None: ...
    @property
    def tool_schema(self) -> str: ...


Factory = Callable[[ModelSettings, Path, Mapping[str, str]], Model]


def _openai(cfg: ModelSettings, base_dir: Path, env: Mapping[str, str]) -> Model:
    from govrun.runtime.models.openai_model import OpenAIModel

    if not cfg.name:
        raise GovrunError("model.name is required for provider openai, e.g. gpt-4o-mini")
    return OpenAIModel(
        name=cfg.name,
        base_url=cfg.base_url,
        api_key=env.get(cfg.api_key_env) if cfg.api_key_env else None,
        params=_params(cfg.params),
        timeout_s=cfg.timeout_s,
        api_key_env=cfg.api_key_env,
        tool_schema=cfg.tool_schema,
    )


def _scripted(cfg: ModelSettings, base_dir: Path, env: Mapping[str, str]) -> Model:
    from govrun.runtime.models.scripted import ScriptedModel

    if not cfg.script:
        raise GovrunError("model.script is required for provider scripted (a YAML file of turns)")
    return ScriptedModel.from_file(base_dir / cfg.script, name=cfg.name or "scripted")


PROVIDERS: dict[str, Factory] = {"openai": _openai, "scripted": _scripted}
"""Provider name -> factory. Add an adapter by registering it here."""


def build_model(model_cfg: ModelSettings, *, base_dir: Path, env: Mapping[str, str]) -> Model:
    """The adapter for ``model_cfg``. ``env`` supplies the API key (never read from
    ``os.environ`` here); ``base_dir`` anchors relative paths such as ``model.script``."""
    factory = PROVIDERS.get(model_cfg.provider)
    if factory is None:
        raise GovrunError(_unknown_provider(model_cfg.provider))
    return factory(model_cfg, Path(base_dir), env)


def _unknown_provider(provider: str) -> str:
    available = ", ".join(sorted(PROVIDERS))
    close = difflib.get_close_matches(provider, PROVIDERS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown model provider {provider!r}.{hint} Available: {available}"


def _params(params: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """Request parameters that were set; unset ones are not sent (the server's default)."""
    if isinstance(params, BaseModel):
        return params.model_dump(exclude_none=True)
    return {key: value for key, value in params.items() if value is not None}

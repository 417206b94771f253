"""Token cost in USD from per-million-token prices, for `budgets.max_cost_usd` and reports."""

from __future__ import annotations

from typing import Protocol

from govrun.runtime.ports import Usage

PER_MTOK = 1_000_000


class Prices(Protocol):
    """The manifest's ``model.pricing`` section (USD per million tokens)."""

    @property
    def input_per_mtok(self) -> float: ...

    @property
    def output_per_mtok(self) -> float: ...

    @property
    def cached_input_per_mtok(self) -> float | None: ...


def cost_usd(usage: Usage, pricing: Prices | None, *, cached_prompt_tokens: int = 0) -> float:
    """What ``usage`` cost; 0.0 without pricing (local models, scripted runs).

    ``cached_prompt_tokens`` (part of ``prompt_tokens``) are billed at the cached price, which
    defaults to the input price.
    """
    if pricing is None:
        return 0.0
    cached = min(max(cached_prompt_tokens, 0), usage.prompt_tokens)
    cached_price = pricing.cached_input_per_mtok
    if cached_price is None:
        cached_price = pricing.input_per_mtok
    dollars = (
        (usage.prompt_tokens - cached) * pricing.input_per_mtok
        + cached * cached_price
        + usage.completion_tokens * pricing.output_per_mtok
    )
    return dollars / PER_MTOK

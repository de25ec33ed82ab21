"""The in-process budget books: holds never let a key pass its budget, and lapsed holds come back."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rankroute.serve.cache import cache_key, is_cacheable
from rankroute.serve.limits import BudgetExceeded, Budgets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(
    budget=st.floats(0.01, 10.0),
    steps=st.lists(
        st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 1.0), st.booleans(), st.floats(0.0, 5.0)), max_size=60
    ),
)
def test_holds_and_settlements_never_book_past_the_budget(budget, steps) -> None:
    """Reserve, then settle (a share of the hold) or abandon; time passes; spend stays within budget."""
    clock = Clock()
    books = Budgets(hold_ttl_s=3.0, clock=clock)

    async def run() -> float:
        for worst, used, settles, wait in steps:
            try:
                hold = await books.reserve("k", budget, worst)
            except BudgetExceeded:
                continue
            if settles:
                books.settle(hold, worst * used)
            clock.now += wait
        return (await books.snapshot(["k"]))["k"][0]

    assert asyncio.run(run()) <= budget + 1e-9


def test_an_abandoned_hold_lapses_after_its_ttl() -> None:
    clock = Clock()
    books = Budgets(hold_ttl_s=10.0, clock=clock)

    async def run() -> tuple[bool, float]:
        await books.reserve("k", 1.0, 0.8)  # its request never settles (the replica died)
        try:
            await books.reserve("k", 1.0, 0.5)
            refused = False
        except BudgetExceeded:
            refused = True
        clock.now = 10.5
        await books.reserve("k", 1.0, 0.5)
        return refused, (await books.snapshot(["k"]))["k"][1]

    refused, held = asyncio.run(run())
    assert refused and held == pytest.approx(0.5)


@given(
    st.dictionaries(
        st.sampled_from(["temperature", "seed", "max_tokens", "top_p", "user"]), st.integers(0, 3)
    )
)
def test_the_cache_key_ignores_field_order_but_not_values(fields) -> None:
    body = {"model": "small", "messages": [{"role": "user", "content": "x"}], **fields}
    reordered = dict(reversed(list(body.items())))
    assert cache_key("chat/completions", body) == cache_key("chat/completions", reordered)
    assert cache_key("chat/completions", body) != cache_key("completions", body)
    for field, value in (("model", "large"), ("max_tokens", 99), ("temperature", 0.5)):
        assert cache_key("chat/completions", body) != cache_key("chat/completions", {**body, field: value})
    assert is_cacheable(body) == (body.get("temperature") == 0 or "seed" in body)
    assert is_cacheable(body, sampled=True) and not is_cacheable({**body, "stream": True}, sampled=True)

from __future__ import annotations

import asyncio

import pytest

from diffs.tasks import cancel_and_wait


async def test_cancels_and_waits_until_the_task_has_run_its_cleanup() -> None:
    cleaned = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits
            cleaned.append(True)

    task = asyncio.get_running_loop().create_task(forever())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled() and cleaned == [True]


async def test_none_is_nothing_to_stop() -> None:
    await cancel_and_wait(None)


async def test_an_error_the_task_ended_with_is_not_hidden() -> None:
    async def broken() -> None:
        raise ValueError("boom")

    task = asyncio.get_running_loop().create_task(broken())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait(task)

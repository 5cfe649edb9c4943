"""V2Settings: driver mapping and start-up failures that name the key and the value."""

from __future__ import annotations

import pydantic
import pytest

from v2_app.settings import V2Settings


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///./v2.db", "sqlite+aiosqlite:///./v2.db"),
        ("sqlite:////abs/v2.db", "sqlite+aiosqlite:////abs/v2.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
    ],
)
def test_database_url_gets_an_async_driver(given: str, expected: str) -> None:
    assert V2Settings(database_url=given).database_url == expected


def test_defaults() -> None:
    settings = V2Settings()

    assert settings.ai_providers == ["offline"]
    assert (settings.redis_url, settings.cache_ttl_seconds, settings.log_json) == (None, 30, True)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"database_url": "mysql://h/db"}, "database_url"),
        ({"ai_providers": ["openai"]}, "ai_providers"),
        ({"ai_providers": []}, "ai_providers"),
        ({"ai_providers": ["offline", "offline"]}, "ai_providers"),
        ({"ai_providers": ["gemini", "offline"]}, "gemini_api_key"),
        ({"cache_ttl_seconds": 0}, "cache_ttl_seconds"),
        ({"log_level": "loud"}, "log_level"),
        ({"no_such_key": 1}, "no_such_key"),
    ],
)
def test_bad_value_fails_naming_the_key(fields: dict[str, object], named: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        V2Settings.model_validate(fields)

    assert named in str(info.value)

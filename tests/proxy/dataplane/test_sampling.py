"""proxy.dataplane.sampling: rate 0 and 1 are exact, a key always gets the same answer, rates hold on average."""

from __future__ import annotations

import random

import pytest

from proxy.dataplane.sampling import Sampler, key_fraction


def test_rate_zero_and_one_are_exact() -> None:
    assert not any(Sampler(0.0).sampled() for _ in range(1000))
    assert all(Sampler(1.0).sampled() for _ in range(1000))
    assert not Sampler(0.0).sampled("user-1")
    assert Sampler(1.0).sampled("user-1")


def test_random_rate_holds_on_average() -> None:
    sampler = Sampler(0.25, rng=random.Random(7))
    hits = sum(sampler.sampled() for _ in range(20_000))
    assert 0.23 < hits / 20_000 < 0.27


def test_keyed_sampling_is_consistent_and_holds_on_average() -> None:
    sampler = Sampler(0.3)
    decisions = {f"user-{n}": sampler.sampled(f"user-{n}") for n in range(5000)}
    assert all(sampler.sampled(key) == hit for key, hit in decisions.items())
    assert all(Sampler(0.3).sampled(key) == hit for key, hit in list(decisions.items())[:100])  # across instances
    assert 0.27 < sum(decisions.values()) / 5000 < 0.33


def test_a_key_sampled_at_a_lower_rate_stays_sampled_at_a_higher_one() -> None:
    keys = [f"k{n}" for n in range(1000)]
    low = {k for k in keys if Sampler(0.1).sampled(k)}
    high = {k for k in keys if Sampler(0.5).sampled(k)}
    assert low <= high


def test_key_fraction_is_in_unit_interval() -> None:
    assert all(0.0 <= key_fraction(str(n)) < 1.0 for n in range(1000))


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rate_out_of_range_is_rejected(rate: float) -> None:
    with pytest.raises(ValueError, match="within 0..1"):
        Sampler(rate)

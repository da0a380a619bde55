"""The library against a dict model: random operations, reboots and power cuts."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jumpstart.formats.nvs import NvsKeys, decrypt_image
from jumpstart.host.nvs_parse import parse_image
from tests.idf.nvs.helpers import boot, partition_bytes
from tests.idf.nvs.scenario import (
    flash_operations,
    mismatches,
    model_values,
    power_cut_case,
    random_ops,
    run_against_model,
)

KEYS = NvsKeys(bytes(range(32)), bytes(range(32, 64)))
SIZE = 0x6000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), encrypted=st.booleans())
def test_random_operations_agree_with_a_dict(seed: int, encrypted: bool) -> None:
    keys = KEYS if encrypted else None
    flash, model = run_against_model(seed, 40, size=SIZE, keys=keys)
    assert mismatches(boot(flash, keys), model) == []
    # The partition parses with our parser (the generator's decrypt: tests/interop).
    image = partition_bytes(flash, SIZE)
    plain = decrypt_image(image, KEYS) if encrypted else image
    assert parse_image(plain).values() == model_values(model)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    position=st.floats(0, 1),
    keep=st.floats(0, 1),
    encrypted=st.booleans(),
)
def test_power_cut_at_any_flash_operation(
    seed: int, position: float, keep: float, encrypted: bool
) -> None:
    keys = KEYS if encrypted else None
    ops = random_ops(random.Random(seed), 30)
    total = flash_operations(ops, size=SIZE, keys=keys)
    cut_at = 1 + int(position * max(total - 1, 0))
    assert power_cut_case(ops, cut_at, keep, size=SIZE, keys=keys) == []

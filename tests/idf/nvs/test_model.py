"""The library against a dict model: random operations, reboots and power cuts."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jumpstart.formats.nvs import NvsKeys, decrypt_image
from jumpstart.host.nvs_parse import parse_image
from jumpstart.idf.esp_err import EspErr
from jumpstart.idf.nvs import NvsError
from tests.idf.nvs.helpers import boot, flash_with_nvs, partition_bytes
from tests.idf.nvs.scenario import (
    Model,
    apply,
    flash_operations,
    mismatches,
    model_apply,
    power_cut_case,
    random_ops,
)

KEYS = NvsKeys(bytes(range(32)), bytes(range(32, 64)))
SIZE = 0x6000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), encrypted=st.booleans())
def test_random_operations_agree_with_a_dict(seed: int, encrypted: bool) -> None:
    rng = random.Random(seed)
    keys = KEYS if encrypted else None
    flash = flash_with_nvs(SIZE)
    nvs = boot(flash, keys)
    model: Model = {}
    for op in random_ops(rng, 40):
        refused = None
        try:
            apply(nvs, op)
        except NvsError as err:
            refused = err.code
        # a refused write (no room, too long) must change nothing
        assert refused in (
            None,
            EspErr.ESP_ERR_NVS_NOT_ENOUGH_SPACE,
            EspErr.ESP_ERR_NVS_VALUE_TOO_LONG,
        )
        if refused is None:
            model_apply(model, op)
        assert mismatches(nvs, model) == []
    assert mismatches(boot(flash, keys), model) == []
    # The partition parses: with our parser, after the generator-compatible decryption.
    image = partition_bytes(flash, SIZE)
    plain = decrypt_image(image, KEYS) if encrypted else image
    parsed = parse_image(plain)
    assert parsed.values() == {name: value for name, (_, value) in model.items()}


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

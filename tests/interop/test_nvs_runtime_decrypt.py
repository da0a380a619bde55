"""Encrypted partitions written by the runtime decrypt with nvs_partition_gen's ``decrypt``.

Random operation sequences (every type, blobs over several pages, namespaces, erases) run
against the dict model; the resulting partition then goes through the generator's own decrypt
function, and the plain image must equal ours and hold exactly the model's values.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from esp_idf_nvs_partition_gen import nvs_partition_gen as gen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jumpstart.formats.nvs import NvsKeys, decrypt_image
from jumpstart.host.nvs_parse import parse_image
from tests.idf.nvs.helpers import partition_bytes
from tests.idf.nvs.scenario import model_values, run_against_model

pytestmark = pytest.mark.interop

KEYS = NvsKeys(bytes(range(7, 39)), bytes(range(70, 102)))
SIZE = 0x6000


def generator_decrypt(image: bytes, keys: NvsKeys, folder: Path) -> bytes:
    encrypted, key_file, out = folder / "enc.bin", folder / "keys.bin", folder / "dec.bin"
    encrypted.write_bytes(image)
    key_file.write_bytes(keys.to_bytes())
    args = SimpleNamespace(
        input=str(encrypted), key=str(key_file), output=out.name, outdir=str(folder)
    )
    with contextlib.redirect_stdout(io.StringIO()):
        gen.decrypt(args)
    return out.read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_runtime_written_partition_decrypts_with_the_generator(
    seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    flash, model = run_against_model(seed, 40, size=SIZE, keys=KEYS)
    image = partition_bytes(flash, SIZE)
    plain = generator_decrypt(image, KEYS, tmp_path_factory.mktemp("decrypt"))
    assert plain == decrypt_image(image, KEYS)
    assert parse_image(plain).values() == model_values(model)

"""Human sizes as the pages show them (binary units; the exact count goes in a title)."""

from __future__ import annotations

import pytest

from ui.pages.sizes import human_size


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * 1024, "10 KiB"),
        (3 * 1024 * 1024 // 2, "1.5 MiB"),
        (1024**3, "1.0 GiB"),
        (5 * 1024**4, "5.0 TiB"),
        (3 * 1024**6, "3072 PiB"),
    ],
)
def test_human_size(size: int, shown: str) -> None:
    assert human_size(size) == shown

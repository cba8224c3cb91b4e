"""A generated certificate is kept while it names every --host, made again when one is new."""

from __future__ import annotations

from pathlib import Path

from gateway import tls


def test_kept_while_it_names_every_host(tmp_path: Path) -> None:
    cert, _ = tls.ensure_certificate(tmp_path, ["minimo", "data.example.org"])
    first = cert.read_bytes()
    tls.ensure_certificate(tmp_path, ["minimo", "data.example.org"])
    tls.ensure_certificate(tmp_path, ["DATA.example.org"])  # a subset, names compare caseless
    tls.ensure_certificate(tmp_path, ["[::1]", "0:0:0:0:0:0:0:1"])  # loopback, any spelling
    assert cert.read_bytes() == first


def test_made_again_for_a_new_host(tmp_path: Path) -> None:
    cert, key = tls.ensure_certificate(tmp_path, ["minimo", "data.example.org"])
    first = cert.read_bytes()
    tls.ensure_certificate(tmp_path, ["minimo", "storage.example.org"])
    assert cert.read_bytes() != first
    names = tls.certificate_names(cert)
    assert "storage.example.org" in names and "minimo" in names
    assert key.stat().st_mode & 0o777 == 0o600
    tls.server_context(cert, key)  # the new key matches the new certificate

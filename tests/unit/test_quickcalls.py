"""The local store's libc calls that keep the GIL (gateway.backends.local.quickcalls) do what
the ``os`` functions they stand in for do, and fail the way those fail: the OSError subclass of
the errno, with the file name, so the callers' error handling is the same."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.backends.local import quickcalls


def test_a_file_written_linked_renamed_and_unlinked(tmp_path: Path) -> None:
    path = str(tmp_path / "temp")
    fd = quickcalls.open_new(path)
    data = b"bytes\x00with a NUL" * 300
    quickcalls.write_all(fd, data)
    quickcalls.set_xattr(fd, "user.minimo", b'{"etag":"x"}')
    quickcalls.close(fd)
    assert Path(path).read_bytes() == data
    assert quickcalls.get_xattr(path, "user.minimo") == os.getxattr(path, "user.minimo")
    quickcalls.link(path, str(tmp_path / "linked"))
    quickcalls.unlink(path)
    quickcalls.rename(str(tmp_path / "linked"), str(tmp_path / "renamed"))
    assert sorted(os.listdir(tmp_path)) == ["renamed"]
    assert (tmp_path / "renamed").read_bytes() == data


def test_errors_are_the_os_errors_with_the_file_name(tmp_path: Path) -> None:
    existing = tmp_path / "there"
    existing.write_bytes(b"")
    with pytest.raises(FileExistsError) as exists:
        quickcalls.open_new(str(existing))
    assert exists.value.filename == str(existing)
    missing = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError) as gone:
        quickcalls.rename(missing, str(tmp_path / "elsewhere"))
    assert gone.value.filename == missing
    with pytest.raises(FileExistsError):
        quickcalls.link(str(existing), str(existing))
    with pytest.raises(FileNotFoundError):
        quickcalls.get_xattr(missing, "user.minimo")
    with pytest.raises(OSError) as no_data:
        quickcalls.get_xattr(str(existing), "user.minimo")
    with pytest.raises(OSError) as os_no_data:
        os.getxattr(str(existing), "user.minimo")
    assert no_data.value.errno == os_no_data.value.errno
    fd = quickcalls.open_new(str(tmp_path / "closed"))
    quickcalls.close(fd)
    with pytest.raises(OSError):
        quickcalls.close(fd)

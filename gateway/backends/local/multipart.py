"""Multipart uploads of the local store, each a directory
``.minimo/multipart/<bucket>/<upload id>/`` holding ``upload.json`` and one file per part.

An upload is built in the temp directory and renamed into place, so a half-created one is
never listed. Completing or aborting first *claims* the upload by renaming it into the temp
directory: of two racing calls only one gets it. A completion interrupted by a crash leaves its
claimed directory behind; :meth:`Uploads.restore_interrupted` puts it back (or removes what a
finished one left). All methods block: the store runs them on its thread pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from typing import Any

from gateway.backends.base import (
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    Conditions,
    CopyResult,
    KeepChecksum,
    Leftover,
    ObjectChecksum,
    PartInfo,
    PartsPage,
    UploadInfo,
    UploadsPage,
    WriteMeta,
)
from gateway.backends.local.layout import (
    COMPLETING,
    UPLOAD_ID,
    Layout,
    Target,
    marker_with_data,
    require_bucket,
)
from gateway.backends.local.partlayout import TAG as SIDECAR_TAG
from gateway.backends.local.partlayout import (
    fits_inline,
    layout_fields,
    settle_sidecar,
    write_sidecar,
)
from gateway.backends.local.placing import place_file, place_marker, precheck
from gateway.backends.local.reader import OPEN_FLAGS, open_sync
from gateway.backends.local.records import EMPTY_MD5, encode_meta, get_meta, meta_of, utc
from gateway.backends.local.writing import TempFile, copy_into, fsync_dir, seal
from gateway.protocol.checksums import Checksum
from gateway.protocol.conditions import check_conditions
from gateway.protocol.errors import S3Error, S3ErrorCode
from gateway.protocol.ranges import copy_range
from gateway.protocol.upload_checksums import object_checksum

_PART_FILE = re.compile(r"part-(\d{5})\Z")


def no_such_upload(upload_id: str) -> S3Error:
    return S3Error(
        S3ErrorCode.NoSuchUpload,
        f"The multipart upload {upload_id!r} does not exist: it was completed, aborted or "
        "never created.",
        extra={"UploadId": upload_id},
    )


def check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error(
            S3ErrorCode.InvalidArgument,
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive.",
            extra={"ArgumentName": "partNumber", "ArgumentValue": str(number)},
        )


def _multipart_etag(part_etags: list[str]) -> str:
    digest = hashlib.md5(b"".join(bytes.fromhex(e) for e in part_etags)).hexdigest()
    return f"{digest}-{len(part_etags)}"


def _clean_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def check_part_checksum(record: dict[str, Any], checksum: KeepChecksum | None) -> None:
    """A part of an upload that keeps a checksum must come with that checksum (as on S3)."""
    kept = record.get("ck")
    if not isinstance(kept, list) or not kept:
        return
    if checksum is None or checksum.algorithm != kept[0]:
        sent = checksum.algorithm if checksum else "none"
        raise S3Error(
            S3ErrorCode.InvalidRequest,
            f"Checksum type mismatch: the upload was created with a {kept[0]} checksum, this "
            f"part was sent with {sent}.",
        )


def _object_checksum(
    kept: Any,
    have: dict[int, tuple[str, os.stat_result, ObjectChecksum | None]],
    wanted: list[tuple[int, str]],
    given: dict[int, tuple[str, str]],
) -> ObjectChecksum | None:
    """The completed object's checksum, when its upload keeps one: every listed part must
    name its checksum in the request, and it must be the one the part was stored with."""
    if not isinstance(kept, list) or len(kept) != 2:
        return None
    algorithm, kind = kept
    parts = []
    for number, _ in wanted:
        named = given.get(number)
        if named is None or named[0] != algorithm:
            raise S3Error(
                S3ErrorCode.InvalidRequest,
                f"The upload was created using a {algorithm} checksum. The complete request "
                f"must include the checksum for each part. It was missing for part {number} "
                "in the request.",
            )
        found = have.get(number)
        if found is None or found[2] is None or found[2].value != named[1]:
            raise S3Error(
                S3ErrorCode.InvalidPart,
                f"The {algorithm} checksum of part {number} does not match the part uploaded.",
                extra={"PartNumber": str(number)},
            )
        parts.append((named[1], found[1].st_size))
    return ObjectChecksum(algorithm, object_checksum(algorithm, kind, parts), kind)


def remove_tree(path: str, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class Uploads:
    """The multipart uploads under one store root."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout

    def load(self, updir: str, key: str, upload_id: str) -> dict[str, Any]:
        """The upload's ``upload.json``; NoSuchUpload when it is gone or for another key."""
        try:
            with open(os.path.join(updir, "upload.json"), "rb") as f:
                record = json.load(f)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise no_such_upload(upload_id) from None
        if record.get("key") != key:
            raise no_such_upload(upload_id)
        return record

    def create(self, t: Target, meta: WriteMeta, checksum: tuple[str, str] | None = None) -> str:
        require_bucket(t.bucket_dir, t.bucket)
        # hex: an id that began with '-' (1 in 64 of URL-safe base64 ones) is taken for an
        # option by command-line clients (`aws s3api upload-part --upload-id -Bx4...`)
        upload_id = secrets.token_hex(24)
        updir = os.path.join(self._layout.uploads_dir(t.bucket), upload_id)
        # build the upload in tmp, then rename: a half-created upload is never listed
        staging = self._layout.tmp_path("upload")
        os.makedirs(staging)
        record = {
            "key": t.key,
            # where it lives, so recovery can put back an upload whose completion was killed
            "bucket": t.bucket,
            "upload_id": upload_id,
            "initiated": time.time(),
            "type": meta.content_type,
            "meta": meta.metadata,
            "headers": meta.headers,
        }
        if checksum is not None:
            record["ck"] = list(checksum)  # [algorithm, type] every part must keep
        with open(os.path.join(staging, "upload.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.makedirs(os.path.dirname(updir), exist_ok=True)
        os.rename(staging, updir)
        return upload_id

    def place_part(
        self,
        temp: TempFile,
        updir: str,
        part_number: int,
        etag: str,
        upload_id: str,
        checksum: ObjectChecksum | None = None,
    ) -> None:
        record: dict[str, Any] = {"etag": etag}
        if checksum is not None:
            record["ck"] = [checksum.algorithm, checksum.value]
        seal(temp, json.dumps(record).encode(), fsync=self._layout.fsync)
        try:
            os.rename(temp.path, os.path.join(updir, f"part-{part_number:05d}"))
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_upload(upload_id) from None  # aborted or completed meanwhile

    def copy_part(
        self,
        t: Target,
        upload_id: str,
        updir: str,
        part_number: int,
        src: Target,
        range_header: str | None,
        conditions: Conditions | None,
    ) -> CopyResult:
        record = self.load(updir, t.key, upload_id)
        kept = record.get("ck")
        # an upload that keeps a checksum keeps one for a copied part too, as for UploadPart
        part_sum = Checksum(kept[0]) if isinstance(kept, list) and kept else None
        fd, info = open_sync(src)
        try:
            check_conditions(info, conditions, copy_source=True)
            byte_range = copy_range(range_header, info.size) if range_header is not None else None
            start, length = (byte_range.start, byte_range.length) if byte_range else (0, info.size)
            if length > MAX_PART_SIZE:
                raise S3Error(S3ErrorCode.EntityTooLarge)
            temp = TempFile(self._layout.tmp_path("part"), None)
            try:
                etag = copy_into(fd, temp, start, length, hashed=True, also=part_sum) or EMPTY_MD5
                checksum = ObjectChecksum(part_sum.algorithm, part_sum.b64()) if part_sum else None
                self.place_part(temp, updir, part_number, etag, upload_id, checksum)
            except BaseException:
                temp.discard()
                raise
        finally:
            os.close(fd)
        return CopyResult(etag, utc(time.time()), checksum)

    @staticmethod
    def _parts(updir: str) -> dict[int, tuple[str, os.stat_result, ObjectChecksum | None]]:
        parts = {}
        for entry in os.scandir(updir):
            match = _PART_FILE.match(entry.name)
            if match is None:
                continue
            try:
                record = get_meta(entry.path) or {}
                kept = record.get("ck")
                checksum = ObjectChecksum(kept[0], kept[1]) if isinstance(kept, list) else None
                parts[int(match.group(1))] = (record.get("etag", ""), entry.stat(), checksum)
            except FileNotFoundError:
                continue  # replaced by a concurrent upload of the same part
        return parts

    def list_parts(
        self, t: Target, upload_id: str, updir: str, part_marker: int, max_parts: int
    ) -> PartsPage:
        self.load(updir, t.key, upload_id)
        try:
            parts = self._parts(updir)
        except FileNotFoundError:
            raise no_such_upload(upload_id) from None
        numbers = sorted(n for n in parts if n > part_marker)
        shown = numbers[: max(0, max_parts)]
        page = PartsPage(
            [
                PartInfo(
                    n, parts[n][0], parts[n][1].st_size, utc(parts[n][1].st_mtime), parts[n][2]
                )
                for n in shown
            ],
            truncated=len(numbers) > len(shown),
        )
        page.next_marker = shown[-1] if shown else None
        return page

    def complete(
        self,
        t: Target,
        upload_id: str,
        updir: str,
        wanted: list[tuple[int, str]],
        given: dict[int, tuple[str, str]],
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        record = self.load(updir, t.key, upload_id)
        precheck(t, if_none_match, if_match)  # before any copying; again at the placing
        # claim the upload by moving it away: of two concurrent completes only one gets it
        claimed = self._layout.tmp_path(COMPLETING)
        try:
            os.rename(updir, claimed)
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_upload(upload_id) from None
        try:
            etag = self._assemble(t, claimed, record, wanted, given, (if_none_match, if_match))
        except BaseException:
            os.rename(claimed, updir)  # nothing happened: the client may fix the list and retry
            raise
        # upload.json goes first: a claimed upload without it is done (recovery removes what
        # is left), one with it was interrupted before it was done (recovery puts it back)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(claimed, "upload.json"))
        shutil.rmtree(claimed, ignore_errors=True)
        bucket_uploads = os.path.dirname(updir)
        with contextlib.suppress(OSError):
            os.rmdir(bucket_uploads)  # only succeeds when no other upload is in flight
        return etag

    def _assemble(
        self,
        t: Target,
        claimed: str,
        record: dict[str, Any],
        wanted: list[tuple[int, str]],
        given: dict[int, tuple[str, str]],
        condition: tuple[bool, str | None],
    ) -> str:
        exclusive, if_match = condition
        have = self._parts(claimed)
        files = []
        sizes: list[int] = []
        for index, (number, etag) in enumerate(wanted):
            found = have.get(number)
            if found is None or found[0] != _clean_etag(etag):
                raise S3Error(
                    S3ErrorCode.InvalidPart,
                    f"Part {number} with ETag {etag} was not uploaded (or was replaced).",
                    extra={"PartNumber": str(number), "ETag": etag},
                )
            if index < len(wanted) - 1 and found[1].st_size < MIN_PART_SIZE:
                raise S3Error(
                    S3ErrorCode.EntityTooSmall,
                    f"Part {number} is {found[1].st_size} bytes; every part but the last must "
                    f"be at least {MIN_PART_SIZE} bytes.",
                    extra={"PartNumber": str(number)},
                )
            files.append(os.path.join(claimed, f"part-{number:05d}"))
            sizes.append(found[1].st_size)
        checksum = _object_checksum(record.get("ck"), have, wanted, given)
        etag = _multipart_etag([_clean_etag(e) for _, e in wanted])
        meta = meta_of(record)
        fsync = self._layout.fsync
        layout = layout_fields(sizes, [have[number][2] for number, _ in wanted])
        if t.marker:
            if any(os.path.getsize(f) for f in files):
                raise marker_with_data(t.key)
            if not fits_inline(layout):
                layout.pop("pck", None)  # empty parts: one run of sizes, only checksums can be many
            place_marker(
                t,
                encode_meta(etag, meta, len(files), layout=layout),
                exclusive,
                fsync=fsync,
                if_match=if_match,
            )
            return etag
        temp = TempFile(self._layout.tmp_path("mpu"), None)
        sidecar: str | None = None
        try:
            for path in files:
                src = os.open(path, OPEN_FLAGS)
                try:
                    copy_into(src, temp, 0, os.fstat(src).st_size, hashed=False)
                finally:
                    os.close(src)
            if not fits_inline(layout):
                # too large for the xattr: a sidecar, durable before the object is visible
                sidecar = self._layout.tmp_path(SIDECAR_TAG)
                write_sidecar(sidecar, layout, t.bucket, t.key, etag, fsync=fsync)
                layout = {"pl": os.path.basename(sidecar)}
            seal(temp, encode_meta(etag, meta, len(files), checksum, layout), fsync=fsync)
            place_file(temp.path, t, exclusive, fsync=fsync, if_match=if_match)
        except BaseException:
            temp.discard()
            if sidecar is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(sidecar)
            raise
        if sidecar is not None:
            settle_sidecar(t.bucket_dir, os.path.basename(sidecar), fsync_dir if fsync else None)
        return etag

    def abort(self, t: Target, upload_id: str, updir: str) -> None:
        require_bucket(t.bucket_dir, t.bucket)
        self.load(updir, t.key, upload_id)
        doomed = self._layout.tmp_path("abort")
        try:
            os.rename(updir, doomed)  # atomic: a racing complete either got it or never will
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_upload(upload_id) from None
        shutil.rmtree(doomed, ignore_errors=True)

    def list_uploads(
        self,
        bucket: str,
        bucket_dir: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadsPage:
        require_bucket(bucket_dir, bucket)
        uploads = []
        base = self._layout.uploads_dir(bucket)
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            try:
                with open(os.path.join(entry.path, "upload.json"), "rb") as f:
                    record = json.load(f)
            except (OSError, ValueError):
                continue  # completed or aborted while we looked
            key = record.get("key", "")
            if key.startswith(prefix):
                uploads.append(UploadInfo(key, entry.name, utc(float(record["initiated"]))))
        # (key, upload id) order: stable, and what the markers of the next page point into
        uploads.sort(key=lambda u: (u.key, u.upload_id))
        page = UploadsPage([], [], False)
        count = 0
        last_prefix = None
        for upload in uploads:
            if key_marker and (
                upload.key < key_marker
                or (
                    upload.key == key_marker
                    and (not upload_id_marker or upload.upload_id <= upload_id_marker)
                )
            ):
                continue
            common = None
            if delimiter and (cut := upload.key.find(delimiter, len(prefix))) >= 0:
                common = upload.key[: cut + len(delimiter)]
                if common in (last_prefix, key_marker):
                    continue
            if count >= max_uploads:
                page.truncated = True
                break
            count += 1
            if common is not None:
                page.prefixes.append(common)
                last_prefix = common
                page.next_key_marker, page.next_upload_id_marker = common, None
            else:
                page.uploads.append(upload)
                page.next_key_marker = upload.key
                page.next_upload_id_marker = upload.upload_id
        return page

    def restore_interrupted(
        self, path: str, name: str, owner: str | None, size: int, repair: bool
    ) -> Leftover:
        """A claimed upload (CompleteMultipartUpload) of a dead process: put back under
        ``multipart/`` when it was not done (upload.json still there), so it can be listed,
        completed again or aborted; removed when it was done."""
        try:
            with open(os.path.join(path, "upload.json"), "rb") as f:
                record = json.load(f)
        except FileNotFoundError:
            record = None  # the completion was done: only its cleanup was interrupted
        except (OSError, ValueError):
            record = {}
        bucket = record.get("bucket") if isinstance(record, dict) else None
        upload_id = record.get("upload_id") if isinstance(record, dict) else None
        restorable = (
            isinstance(bucket, str)
            and isinstance(upload_id, str)
            and UPLOAD_ID.match(upload_id) is not None
            and os.path.isdir(os.path.join(self._layout.root, bucket))
        )
        if record is None:
            detail = "what a completed multipart upload left behind"
        elif restorable:
            detail = (
                f"multipart upload {upload_id} of s3://{bucket}/{record.get('key', '')} whose "
                "completion was interrupted (put back: it can be listed, completed or aborted)"
            )
        else:
            detail = "multipart upload whose completion was interrupted (bucket or id unknown)"
        leftover = Leftover("interrupted_complete", name, owner, size, detail)
        if not repair:
            return leftover
        if restorable:
            assert isinstance(bucket, str) and isinstance(upload_id, str)
            updir = os.path.join(self._layout.uploads_dir(bucket), upload_id)
            os.makedirs(os.path.dirname(updir), exist_ok=True)
            try:
                os.rename(path, updir)
            except OSError:
                remove_tree(path, True)  # the id is taken again (cannot happen) or gone
        else:
            remove_tree(path, True)
        leftover.repaired = True
        return leftover

"""The ``local`` object store: buckets and objects as plain directories and files.

Layout under ``root`` (an admin can read the raw data with ordinary tools):

* ``root/<bucket>/``            one directory per bucket
* ``root/<bucket>/<key>``       one file per object, holding exactly the object's bytes
* ``root/<bucket>/<key>/``      a key ending in ``/`` (folder marker) is the directory itself
* xattr ``user.minimo``         JSON with ETag, content type, user metadata, stored headers and
                                the multipart part count, on the file (or marker directory)
* ``root/.minimo/tmp/``         temp files; same filesystem, so rename into place is atomic.
                                Named ``<tag>-<instance id>-<n>``: the instance id
                                (gateway.instance) tells recovery which process owns one
* ``root/.minimo/multipart/<bucket>/<upload id>/``  ``upload.json`` and one file per part
* ``root/.minimo/layouts/``     part layouts of multipart objects too large for their xattr
                                (:mod:`.partlayout`)

Bucket names never start with ``.``, so ``.minimo`` cannot collide with a bucket.

Writes stream into a temp file, fsync it, set the xattr and only then rename it into place, so
an object is visible with its metadata only when complete. ``If-None-Match: *`` uses ``link``
instead of ``rename`` because link refuses to replace an existing name: exactly one of several
concurrent writers wins. All file I/O runs on a private thread pool in large batches, so the
event loop never waits on the disk and does few thread hops per object.

The modules, one concern each:

* :mod:`.layout`     where a bucket, key, temp file or upload lives; which names are valid
* :mod:`.records`    the ``user.minimo`` xattr: what it holds and how an ObjectInfo is read
* :mod:`.partlayout` a multipart object's part sizes and checksums: in the xattr or a sidecar
* :mod:`.pool`       the thread pool all file I/O runs on; a full disk as the S3 error
* :mod:`.writing`    temp files: batched writes, hashing, early writeback, fsync, copies
* :mod:`.dirsync`    directory fsyncs that concurrent writers of one directory share
* :mod:`.placing`    a sealed temp file (or folder marker) put in place atomically
* :mod:`.buckets`    buckets as the directories at the top of the root
* :mod:`.reader`     opening an object and sending it (sendfile(2) or read-ahead pieces)
* :mod:`.lister`     keys in UTF-8 byte order by walking the directories lazily
* :mod:`.multipart`  uploads, parts, completion, and putting back an interrupted completion
* :mod:`.leftovers`  what crashed writes left in the scratch space
* :mod:`.store`      :class:`LocalObjectStore`, the ObjectStore tying them together
"""

from gateway.backends.local.records import XATTR
from gateway.backends.local.store import LocalObjectStore

__all__ = ["XATTR", "LocalObjectStore"]

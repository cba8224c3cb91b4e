"""Ready-to-paste client commands (plain text; the template escapes).

Three kinds: a session key's configuration (upload into the session's scope), a personal key's
(list and download; a personal key writes only with a session named in a header, so the read
commands are what works for every role), and one object's download commands for the object page
(with the user's own key). The profile/remote names come from the session id or the access key,
which are ``[0-9A-Za-z]`` only, so they need no quoting in INI files or shells; the endpoint is
the page's own origin and goes through ``json.dumps`` where it lands in Python source; object
keys are shell-quoted.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from policy.store.base import SessionRecord


def snippets(
    endpoint: str, region: str, session: SessionRecord, key: dict[str, Any]
) -> dict[str, str]:
    """A session key's: configure, then upload into the session's scope."""
    name = f"minimo-{session.id.lower()}"
    access, secret = str(key["access_key"]), str(key["secret_key"])
    target = f"s3://{session.bucket}/{session.prefix}"
    return {
        "aws": _aws(name, access, secret, endpoint, region)
        + f"aws --profile {name} s3 cp ./myfile {target}",
        "rclone": _rclone(name, access, secret, endpoint, region)
        + f"rclone copy ./mydir {name}:{session.bucket}/{session.prefix}",
        "minio": _minio(access, secret, endpoint)
        + f"client.fput_object({json.dumps(session.bucket)}, "
        f'{json.dumps(session.prefix + "myfile")}, "./myfile")',
    }


def personal_key_snippets(endpoint: str, region: str, access: str, secret: str) -> dict[str, str]:
    """A personal key's: configure, then list the buckets and download an object."""
    name = f"minimo-{access.lower()}"
    return {
        "aws": _aws(name, access, secret, endpoint, region)
        + f"aws --profile {name} s3 ls\n"
        + f"aws --profile {name} s3 cp s3://BUCKET/KEY ./",
        "rclone": _rclone(name, access, secret, endpoint, region)
        + f"rclone lsd {name}:\nrclone copy {name}:BUCKET/PREFIX ./mydir",
        "minio": _minio(access, secret, endpoint)
        + "for bucket in client.list_buckets():\n    print(bucket.name)\n"
        + 'client.fget_object("BUCKET", "KEY", "./KEY")',
    }


def _aws(name: str, access: str, secret: str, endpoint: str, region: str) -> str:
    return (
        f"# ~/.aws/credentials\n[{name}]\n"
        f"aws_access_key_id = {access}\naws_secret_access_key = {secret}\n\n"
        f"# ~/.aws/config\n[profile {name}]\nregion = {region}\n"
        f"endpoint_url = {endpoint}\n\n"
    )


def _rclone(name: str, access: str, secret: str, endpoint: str, region: str) -> str:
    return (
        f"# ~/.config/rclone/rclone.conf\n[{name}]\ntype = s3\nprovider = Minio\n"
        f"access_key_id = {access}\nsecret_access_key = {secret}\n"
        f"endpoint = {endpoint}\nregion = {region}\n\n"
    )


def _minio(access: str, secret: str, endpoint: str) -> str:
    return (
        "from urllib.parse import urlsplit\n\nfrom minio import Minio\n\n"
        f"endpoint = urlsplit({json.dumps(endpoint)})\n"
        "client = Minio(\n    endpoint.netloc,\n"
        f"    access_key={json.dumps(access)},\n    secret_key={json.dumps(secret)},\n"
        '    secure=endpoint.scheme == "https",\n)\n'
    )


def download_snippets(endpoint: str, bucket: str, key: str) -> dict[str, str]:
    """Commands that download one object with the user's own key (aws cli, rclone); the key is
    shell-quoted, as object names may hold spaces or quotes."""
    name = key.rsplit("/", 1)[-1] or "download"
    uri = shlex.quote(f"s3://{bucket}/{key}")
    return {
        "aws": f"aws --endpoint-url {endpoint} s3 cp {uri} {shlex.quote('./' + name)}",
        "rclone": (
            "# a remote 'minimo' of type s3 with your key and endpoint = "
            f"{endpoint}\nrclone copy {shlex.quote(f'minimo:{bucket}/{key}')} ./"
        ),
    }

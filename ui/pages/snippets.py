"""Ready-to-paste client configurations for a new session key (plain text; the template escapes).

The profile/remote names come from the session id, which is ``[0-9a-z]`` only, so they need no
quoting in INI files or shells; the endpoint is the page's own origin and goes through
``json.dumps`` where it lands in Python source.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from policy.store.base import SessionRecord


def snippets(
    endpoint: str, region: str, session: SessionRecord, key: dict[str, Any]
) -> dict[str, str]:
    name = f"minimo-{session.id.lower()}"
    access, secret = str(key["access_key"]), str(key["secret_key"])
    target = f"s3://{session.bucket}/{session.prefix}"
    return {
        "aws": (
            f"# ~/.aws/credentials\n[{name}]\n"
            f"aws_access_key_id = {access}\naws_secret_access_key = {secret}\n\n"
            f"# ~/.aws/config\n[profile {name}]\nregion = {region}\n"
            f"endpoint_url = {endpoint}\n\n"
            f"aws --profile {name} s3 cp ./myfile {target}"
        ),
        "rclone": (
            f"# ~/.config/rclone/rclone.conf\n[{name}]\ntype = s3\nprovider = Minio\n"
            f"access_key_id = {access}\nsecret_access_key = {secret}\n"
            f"endpoint = {endpoint}\nregion = {region}\n\n"
            f"rclone copy ./mydir {name}:{session.bucket}/{session.prefix}"
        ),
        "minio": (
            "from urllib.parse import urlsplit\n\nfrom minio import Minio\n\n"
            f"endpoint = urlsplit({json.dumps(endpoint)})\n"
            "client = Minio(\n    endpoint.netloc,\n"
            f"    access_key={json.dumps(access)},\n    secret_key={json.dumps(secret)},\n"
            '    secure=endpoint.scheme == "https",\n)\n'
            f"client.fput_object({json.dumps(session.bucket)}, "
            f'{json.dumps(session.prefix + "myfile")}, "./myfile")'
        ),
    }


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

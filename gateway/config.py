"""Configuration of one gateway process, from CLI options and ``MINIMO_*`` environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path


@dataclass(slots=True)
class Config:
    data_dir: Path = Path("minimo-data")
    listen_host: str = "127.0.0.1"
    listen_port: int = 9000
    #: the region clients must sign for; others get AuthorizationHeaderMalformed
    region: str = "us-east-1"
    #: set = objects go to this S3 endpoint (the ``s3`` backend); unset = ``local`` backend
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: where generated TLS material lives (docs/design.md, "Shape": ``certs/``)
    certs_dir: Path = Path("certs")
    #: extra host names for the generated certificate's SANs
    hosts: list[str] = field(default_factory=list)
    insecure_http: bool = False
    #: virtual-hosted-style requests are recognised under this domain when set
    domain: str | None = None
    #: how refusals and the UI name this server (defaults to the listen address)
    public_url: str | None = None
    #: set = the web UI and its API answer on this URL's host name only, and S3 reads are
    #: refused there (gateway.ui_host); needs ``public_url`` on another host name
    ui_url: str | None = None
    #: the Fernet key that encrypts S3 secrets at rest (default ``DATA_DIR/secret.key``)
    secret_key_file: Path | None = None
    #: set = metadata lives in this MongoDB (the ``mongo`` backend, database from the URI's path,
    #: default ``minimo``); unset = ``sqlite`` in the data dir. Every process sharing one
    #: database must use the same secret key file: the secrets stored there are encrypted with it.
    mongo_uri: str | None = None
    #: a policy file (TOML) put in force at start; unchanged files make no new version
    policy_file: Path | None = None
    #: seconds a stopping process (SIGTERM) gives the requests in flight to finish, after it
    #: stopped accepting new ones (aiohttp's shutdown timeout)
    drain_timeout: float = 60.0
    #: crash recovery (gateway.usecases.recovery): seconds between this process's heartbeats
    #: (it counts as dead after 3 missed ones + 5 s), seconds between recovery runs, and the age
    #: at which unfinished multipart uploads are aborted
    heartbeat_interval: float = 10.0
    recovery_interval: float = 60.0
    multipart_expiry: timedelta = timedelta(days=7)
    #: the bearer token that reads /_minimo/metrics besides signed-in admins (None: admins only)
    metrics_token: str | None = None
    #: anyone may read /_minimo/metrics (a scrape network nobody else reaches)
    metrics_public: bool = False
    #: the web UI warns about an open session that expires within this time (session page, home)
    expiry_warning: timedelta = timedelta(hours=1)

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "minimo.sqlite3"

    @property
    def metadata_location(self) -> str:
        """Where metadata lives, for messages (a MongoDB URI with its password hidden)."""
        if self.mongo_uri:
            from policy.store.mongo import redact_uri

            return redact_uri(self.mongo_uri)
        return str(self.sqlite_path)

    @property
    def secret_key_path(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"{self.scheme}://{self.listen_host}:{self.listen_port}"

    @property
    def ui_base_url(self) -> str:
        """Where the web UI is: links in refusals and crates point here."""
        return self.ui_url.strip().rstrip("/") if self.ui_url else self.base_url

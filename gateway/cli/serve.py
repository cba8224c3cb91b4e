"""``minimo serve``: the gateway itself, on the stores the options name.

Every option also has a ``MINIMO_*`` environment variable; the work is :mod:`gateway.server`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from gateway.cli.options import S3Options, data_dir_option, duration_value, mongo_uri, s3_options
from gateway.config import Config

#: a metrics token shorter than this is refused: it guards what a scraper reads, so guessable
#: values must not do
MIN_METRICS_TOKEN = 16


def read_metrics_token(path: Path | None) -> str | None:
    """The token in ``path`` (surrounding white space dropped), or None without a file."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc}", param_hint="--metrics-token-file"
        ) from exc
    if len(token) < MIN_METRICS_TOKEN or any(c.isspace() for c in token):
        raise click.BadParameter(
            f"{path} must hold one token of at least {MIN_METRICS_TOKEN} characters without "
            "spaces, e.g. the output of: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe())'",
            param_hint="--metrics-token-file",
        )
    return token


@click.command()
@data_dir_option
@click.option(
    "--listen",
    default="127.0.0.1:9000",
    show_default=True,
    envvar="MINIMO_LISTEN",
    help="HOST:PORT to listen on. Plain HTTP is allowed on loopback only.",
)
@click.option(
    "--region",
    default="us-east-1",
    show_default=True,
    envvar="MINIMO_REGION",
    help="The region clients sign for.",
)
@s3_options("Store objects at this S3 URL.")
@click.option("--tls", is_flag=True, envvar="MINIMO_TLS", help="Serve HTTPS.")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MINIMO_TLS_CERT",
    help="Your own certificate (PEM); default: generated in --certs-dir.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MINIMO_TLS_KEY",
    help="The private key of --tls-cert (PEM).",
)
@click.option(
    "--certs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="certs",
    show_default=True,
    envvar="MINIMO_CERTS_DIR",
    help="Where generated TLS material lives.",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    envvar="MINIMO_HOSTS",
    help="Extra name or address for the generated certificate (repeatable).",
)
@click.option(
    "--insecure-http",
    is_flag=True,
    envvar="MINIMO_INSECURE_HTTP",
    help="Allow plain HTTP on a non-loopback address.",
)
@click.option("--domain", envvar="MINIMO_DOMAIN", help="Accept virtual-hosted-style requests.")
@click.option("--public-url", envvar="MINIMO_PUBLIC_URL", help="How refusals name this server.")
@click.option(
    "--ui-url",
    envvar="MINIMO_UI_URL",
    help="Serve the web UI and its API on this URL's host name only, and no object reads there "
    "(needs --public-url on another host name).",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MINIMO_POLICY",
    help="Put this policy file (TOML) in force at start (no new version if unchanged).",
)
@click.option(
    "--access-log",
    is_flag=True,
    envvar="MINIMO_ACCESS_LOG",
    help="Log every request (costs throughput).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    envvar="MINIMO_WORKERS",
    help="Worker processes serving the one port (default: the CPUs this process may use). "
    "1: a single process, no supervisor.",
)
@click.option(
    "--drain-timeout",
    default="60s",
    show_default=True,
    envvar="MINIMO_DRAIN_TIMEOUT",
    callback=duration_value,
    help="On SIGTERM/SIGINT, how long requests in flight may take to finish (new connections "
    "are no longer accepted).",
)
@click.option(
    "--multipart-expiry",
    default="7d",
    show_default=True,
    envvar="MINIMO_MULTIPART_EXPIRY",
    callback=duration_value,
    help="Abort multipart uploads left unfinished for this long (e.g. 7d, 36h).",
)
@click.option(
    "--recovery-interval",
    default="60s",
    show_default=True,
    envvar="MINIMO_RECOVERY_INTERVAL",
    callback=duration_value,
    help="How often crash recovery runs (one gateway of those sharing the stores runs it).",
)
@click.option(
    "--heartbeat-interval",
    default="10s",
    show_default=True,
    envvar="MINIMO_HEARTBEAT_INTERVAL",
    callback=duration_value,
    help="How often this gateway tells the others it is alive (dead after 3 missed + 5s).",
)
@click.option(
    "--metrics-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MINIMO_METRICS_TOKEN_FILE",
    help="A file holding the token that reads /_minimo/metrics (Authorization: Bearer TOKEN) "
    "besides signed-in admins.",
)
@click.option(
    "--metrics-public",
    is_flag=True,
    envvar="MINIMO_METRICS_PUBLIC",
    help="Anyone may read /_minimo/metrics (only on a network where nobody else listens).",
)
@click.option(
    "--expiry-warning",
    default="1h",
    show_default=True,
    envvar="MINIMO_EXPIRY_WARNING",
    callback=duration_value,
    help="The web UI warns about open sessions that expire within this time.",
)
def serve(
    data_dir: Path,
    secret_key_file: Path | None,
    listen: str,
    region: str,
    s3: S3Options,
    tls: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    certs_dir: Path,
    hosts: tuple[str, ...],
    insecure_http: bool,
    domain: str | None,
    public_url: str | None,
    ui_url: str | None,
    policy_file: Path | None,
    access_log: bool,
    workers: int | None,
    drain_timeout: timedelta,
    multipart_expiry: timedelta,
    recovery_interval: timedelta,
    heartbeat_interval: timedelta,
    metrics_token_file: Path | None,
    metrics_public: bool,
    expiry_warning: timedelta,
) -> None:
    """Serve S3 (and /_minimo/) on --listen."""
    from gateway.server import ServeError, parse_listen, run
    from gateway.supervisor import default_workers
    from gateway.ui_host import check_ui_url

    try:
        host, port = parse_listen(listen)
    except ServeError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from exc
    s3.check()
    if ui_url:
        try:
            check_ui_url(ui_url, public_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ui-url") from exc
    if (tls_cert or tls_key) and not tls:
        tls = True  # giving a certificate can only mean HTTPS
    config = Config(
        data_dir=data_dir,
        listen_host=host,
        listen_port=port,
        region=region,
        s3_endpoint=s3.endpoint or None,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        s3_region=s3.region,
        tls=tls,
        tls_cert=tls_cert,
        tls_key=tls_key,
        certs_dir=certs_dir,
        hosts=list(hosts),
        insecure_http=insecure_http,
        domain=domain,
        public_url=public_url,
        ui_url=ui_url or None,
        secret_key_file=secret_key_file,
        mongo_uri=mongo_uri(),
        policy_file=policy_file,
        drain_timeout=drain_timeout.total_seconds(),
        heartbeat_interval=heartbeat_interval.total_seconds(),
        recovery_interval=recovery_interval.total_seconds(),
        multipart_expiry=multipart_expiry,
        metrics_token=read_metrics_token(metrics_token_file),
        metrics_public=metrics_public,
        expiry_warning=expiry_warning,
    )
    try:
        run(config, access_log=access_log, workers=workers or default_workers())
    except ServeError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass

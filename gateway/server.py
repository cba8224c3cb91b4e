"""``minimo serve``: open the stores, create the first admin, serve S3 (and ``/_minimo/``).

Startup order matters: everything that can refuse (listen address, TLS material, secret key,
metadata store) is checked before the port opens, so a misconfigured server exits with a clear
message instead of answering requests it cannot serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway import tls
from gateway.config import Config
from gateway.usecases import metrics
from gateway.usecases.appkeys import METADATA_STORE
from policy.crypto import SecretBox, SecretKeyError
from policy.identity import IdentityService, InitialAdmin
from policy.store import MetadataStore, open_metadata_store

log = logging.getLogger("minimo.server")

INITIAL_ADMIN_FILE = "initial-admin.txt"


class ServeError(Exception):
    """The server cannot start; the message says why and what to change."""


# -- configuration checks ------------------------------------------------------------------------
def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9000`` for IPv6) -> (host, port)."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ServeError(f"--listen must be HOST:PORT (e.g. 127.0.0.1:9000), not {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ServeError(f"--listen port {port} is not between 1 and 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_transport(config: Config) -> None:
    """Plain HTTP only on loopback, unless explicitly forced (docs/design.md, decision 9)."""
    if config.tls or config.insecure_http or is_loopback(config.listen_host):
        return
    raise ServeError(
        f"refusing to serve plain HTTP on {config.listen_host}, which is not a loopback address: "
        "S3 secrets and data would cross the network unencrypted. Add --tls (a self-signed "
        "certificate is generated on first use) or --tls-cert/--tls-key, listen on 127.0.0.1 "
        "behind a TLS proxy, or pass --insecure-http if you really mean it."
    )


def ssl_context(config: Config) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    try:
        if config.tls_cert or config.tls_key:
            if not (config.tls_cert and config.tls_key):
                raise ServeError("--tls-cert and --tls-key must be given together")
            cert, key = config.tls_cert, config.tls_key
        else:
            cert, key = tls.ensure_certificate(config.certs_dir, config.hosts)
        return tls.server_context(cert, key)
    except tls.TlsError as exc:
        raise ServeError(str(exc)) from exc


# -- stores --------------------------------------------------------------------------------------
async def open_identity(config: Config) -> IdentityService:
    """The metadata store and secret key of ``config``'s data dir, as an identity service.

    The CLI and the server both use this, so they always agree on where things are.
    """
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServeError(f"cannot create the data directory {config.data_dir}: {exc}") from exc
    try:
        box = SecretBox.from_file(config.secret_key_path)
    except (SecretKeyError, OSError) as exc:
        raise ServeError(f"cannot use the secret key file {config.secret_key_path}: {exc}") from exc
    try:
        store = await open_metadata_store(config.sqlite_path, mongo_uri=config.mongo_uri)
    except Exception as exc:  # sqlite3 errors, permissions, a corrupt file, MongoDB unreachable...
        raise ServeError(
            f"cannot open the metadata store {config.metadata_location}: {exc}"
        ) from exc
    return IdentityService(store, box)


async def apply_policy_file(store: MetadataStore, path: Path) -> None:
    """``serve --policy FILE``: put FILE in force (a file equal to the stored source makes no
    new version, so restarting with the same file does not grow the history)."""
    from policy.audit import Auditor, operator_name
    from policy.catalog import FormService, PolicyService
    from policy.rules import PolicyError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ServeError(f"cannot read the policy file {path}: {exc}") from exc
    auditor = Auditor(store)
    try:
        stored = await PolicyService(store, FormService(store, auditor), auditor).set(
            text, operator_name()
        )
    except PolicyError as exc:
        raise ServeError(f"--policy {path}: " + "; ".join(exc.problems)) from exc
    log.info("policy version %d in force (%d rules)", stored.version, len(stored.policy.rules))


def write_initial_admin(data_dir: Path, admin: InitialAdmin) -> Path:
    """``DATA_DIR/initial-admin.txt`` (0600): the first admin's credentials, ``key: value``."""
    path = data_dir / INITIAL_ADMIN_FILE
    text = (
        "# minimo's first admin, created at first start. Keep it safe, then delete this file.\n"
        f"user: {admin.user}\n"
        f"password: {admin.password}\n"
        f"access_key: {admin.access_key}\n"
        f"secret_key: {admin.secret_key}\n"
    )
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # also when the file already existed with other modes
        f.write(text)
    return path


def announce_initial_admin(admin: InitialAdmin, path: Path, web_ui: str) -> None:
    print(
        "\nNo users existed, so minimo created its first admin (shown only this once):\n"
        f"  web UI:     {web_ui}\n"
        f"  user:       {admin.user}\n"
        f"  password:   {admin.password}\n"
        f"  access_key: {admin.access_key}\n"
        f"  secret_key: {admin.secret_key}\n"
        f"(also written to {path}, mode 0600)\n",
        flush=True,
    )


async def _open_object_store(config: Config) -> Any:
    from gateway.backends import open_object_store

    store = open_object_store(config)
    if inspect.isawaitable(store):
        store = await store
    try:
        await store.start()
    except Exception as exc:
        # An upstream that is not up yet (compose start order) must not stop the gateway:
        # /_minimo/health answers 503 until the store answers.
        log.warning("object store not reachable yet (%s); health answers 503 until it is", exc)
    return store


def _create_app(config: Config, object_store: Any, identity: IdentityService) -> web.Application:
    """The S3 app with the web UI mounted on it (the S3 front end does not import the UI)."""
    from gateway.s3api.app import create_app
    from gateway.usecases.writes import build_write_path
    from ui import session_link, setup_ui

    # Enforcement (policy.enforce) and the write protocol share the identity's metadata store;
    # refusals link to the UI's new-session page.
    ui_url = config.ui_base_url
    writes = build_write_path(identity, ui_url, session_link(ui_url))
    return create_app(config, object_store, identity, writes, mount=setup_ui)


def _recovery_service(config: Config, object_store: Any, store: MetadataStore) -> Any:
    from gateway.usecases.recovery import RecoveryService, RecoverySettings

    settings = RecoverySettings(
        heartbeat=config.heartbeat_interval,
        interval=config.recovery_interval,
        multipart_expiry=config.multipart_expiry,
    )
    return RecoveryService(object_store, store, settings)


def _handler_args() -> dict[str, Any]:
    import gateway.s3api.app

    return dict(getattr(gateway.s3api.app, "HANDLER_ARGS", {}))


# -- serving -------------------------------------------------------------------------------------
@dataclass
class Started:
    """What a running server exposes to whoever started it (tests, the CLI)."""

    url: str
    identity: IdentityService
    object_store: Any


async def serve(
    config: Config,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[Started], None] | None = None,
    access_log: bool = False,
    listeners: list[socket.socket] | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM arrive), then close everything.

    ``listeners`` set: this is a worker of ``--workers N`` (gateway.supervisor), which serves
    the supervisor's sockets and skips what the supervisor did once (:func:`prepare`).
    """
    check_transport(config)
    context = ssl_context(config)
    identity = await open_identity(config)
    store: MetadataStore = identity.store
    object_store = None
    recovery = None
    runner: web.AppRunner | None = None
    sharing: asyncio.Task[None] | None = None
    try:
        if listeners is None:
            await _first_start(config, identity)
        object_store = await _open_object_store(config)
        # every store call timed and its failures counted (/_minimo/metrics)
        metrics.instrument_store(store, "metadata", skip=("open", "close"))
        metrics.instrument_store(object_store, "objects", skip=("start", "close"))
        recovery = _recovery_service(config, object_store, store)
        await recovery.start()
        app = _create_app(config, object_store, identity)
        app[METADATA_STORE] = store
        in_flight = InFlight() if listeners is not None else None
        if in_flight is not None:
            app.on_response_prepare.append(_name_the_worker)
            app.middlewares.append(in_flight.middleware)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            # aiohttp's access log formats a line per request: a measurable cost at high rates.
            access_log=logging.getLogger("aiohttp.access") if access_log else None,
            # on SIGTERM: stop accepting, then give requests in flight this long to finish
            shutdown_timeout=config.drain_timeout,
            **_handler_args(),
        )
        await runner.setup()
        if listeners is None:
            site = web.TCPSite(
                runner,
                config.listen_host,
                config.listen_port,
                ssl_context=context,
                backlog=LISTEN_BACKLOG,
            )
            try:
                await site.start()
            except OSError as exc:
                raise ServeError(
                    f"cannot listen on {config.listen_host}:{config.listen_port}: "
                    f"{exc.strerror or exc}"
                ) from exc
        else:
            for sock in listeners:
                await web.SockSite(
                    runner, sock, ssl_context=context, backlog=LISTEN_BACKLOG
                ).start()
        url = _url(config)
        log.info(
            "minimo serving %s (objects: %s, metadata: %s); web UI: %s",
            url,
            object_store.kind,
            store.kind,
            web_ui_url(config),
        )
        if on_started is not None:
            on_started(Started(url, identity, object_store))
        # a worker of several shares its counts with the others (no-op for a single process)
        sharing = asyncio.create_task(metrics.share_while_running())
        await _wait_for_stop(stop)
        if in_flight is not None:
            await _drain(runner, in_flight, config.drain_timeout)
    finally:
        if runner is not None:
            await runner.cleanup()
        if sharing is not None:
            sharing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sharing
        if recovery is not None:
            await recovery.stop()
        if object_store is not None:
            with contextlib.suppress(Exception):
                await object_store.close()
        await store.close()
        log.info("minimo stopped")


def web_ui_url(config: Config) -> str:
    """Where people open the web UI: its own host name (--ui-url), the public URL, or else the
    address this process listens on."""
    return (config.ui_url or config.public_url or _url(config)).strip().rstrip("/") + "/_minimo/"


def _url(config: Config) -> str:
    host = config.listen_host
    if ":" in host:
        host = f"[{host}]"
    return f"{config.scheme}://{host}:{config.listen_port}"


async def _wait_for_stop(stop: asyncio.Event | None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def run(config: Config, *, access_log: bool = False, workers: int = 1) -> None:
    """Blocking entry point for ``minimo serve``: uvloop when available; with ``workers`` > 1,
    a supervisor and that many worker processes on one socket (gateway.supervisor)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if workers == 1:
        _run_loop(serve(config, access_log=access_log))
    else:
        _supervise(config, workers, access_log=access_log)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    loop_factory = None
    if sys.platform != "win32":
        with contextlib.suppress(ImportError):
            import uvloop

            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main)


# -- several workers -----------------------------------------------------------------------------
#: pending connections the kernel queues for the listening socket
LISTEN_BACKLOG = 1024
#: the response header naming the worker process that answered (``--workers`` > 1 only): its
#: PID, so an operator (and the tests) can tell which process served a request
WORKER_HEADER = "x-minimo-worker"


class InFlight:
    """Counts the requests a worker is handling, so that it can drain before closing.

    aiohttp's own shutdown (``AppRunner.cleanup``) stops reading from every connection at once,
    which cuts off an upload whose body is still arriving; a worker first stops accepting,
    then waits for this count to reach zero, and only then cleans up.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return not self.count


async def _drain(runner: web.AppRunner, in_flight: InFlight, timeout: float) -> None:
    """Stop accepting (the other workers go on), then let the requests in flight finish."""
    for site in list(runner.sites):
        await site.stop()
    if in_flight.count:
        log.info("draining: %d requests in flight (up to %g s)", in_flight.count, timeout)
    if not await in_flight.wait_idle(timeout):
        log.warning("%d requests still in flight after %g s: cutting them off", in_flight.count,
                    timeout)  # fmt: skip


async def _name_the_worker(request: web.BaseRequest, response: web.StreamResponse) -> None:
    response.headers[WORKER_HEADER] = str(os.getpid())


async def _first_start(config: Config, identity: IdentityService) -> None:
    """What happens once per start, before serving: the first admin, ``--policy``."""
    admin = await identity.ensure_initial_admin()
    if admin is not None:
        announce_initial_admin(
            admin, write_initial_admin(config.data_dir, admin), web_ui_url(config)
        )
    if config.policy_file is not None:
        await apply_policy_file(identity.store, config.policy_file)


async def prepare(config: Config) -> None:
    """The supervisor's checks and first-start steps (everything :func:`serve` does before the
    port opens, done once for all workers), leaving no store open behind it."""
    check_transport(config)
    ssl_context(config)  # generates the certificate once, not once per worker
    identity = await open_identity(config)
    try:
        await _first_start(config, identity)
    finally:
        await identity.store.close()


def bind_listeners(config: Config) -> list[socket.socket]:
    """The listening sockets of ``--listen`` (one per address the host name stands for, as
    aiohttp's TCPSite binds them), for the workers to share."""
    host, port = config.listen_host, config.listen_port
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sockets


def _supervise(config: Config, workers: int, *, access_log: bool) -> None:
    from gateway.supervisor import DRAIN_SLACK, GaveUp, Supervisor, share_metrics_directory

    if not sys.platform.startswith("linux"):
        raise ServeError("--workers above 1 needs Linux (workers die with their supervisor)")
    _run_loop(prepare(config))
    listeners = bind_listeners(config)
    metrics_dir = share_metrics_directory(config.data_dir)
    log.info("minimo serving %s with %d workers", _url(config), workers)

    def work() -> None:
        try:
            _run_loop(serve(config, access_log=access_log, listeners=listeners))
        except ServeError as exc:  # the reason, once, without a traceback
            log.error("this worker cannot serve: %s", exc)
            raise SystemExit(1) from exc

    try:
        Supervisor(workers, work, drain_grace=config.drain_timeout + DRAIN_SLACK).run()
    except GaveUp as exc:
        raise ServeError(str(exc)) from exc
    finally:
        for sock in listeners:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("minimo stopped")

"""Two gateways share one data dir (and so one metadata store and one object store). One is
SIGKILLed in the middle of a PutObject and stays dead: the other, never restarted, rolls back
the dead one's write at its next periodic recovery run (the key is writable again), and leaves
its own write in progress untouched (it completes and is recorded).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.faults.kill_support import (
    KillableGateway,
    assert_recovered,
    sha256,
    start_upload,
    wait_until,
)

MIB = 1024 * 1024


def test_a_live_gateway_recovers_a_dead_peer(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    survivor = KillableGateway(data_dir)
    survivor.start()
    victim = KillableGateway(data_dir)
    try:
        victim.start()
        s3 = survivor.client()
        bucket = f"peer-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=bucket)

        # both gateways have a write in progress (half the body sent)
        dead_data, live_data = secrets.token_bytes(12 * MIB), secrets.token_bytes(12 * MIB)
        dead_conn = start_upload(victim.endpoint, victim, f"/{bucket}/dead.bin", [], len(dead_data))
        dead_conn.send(dead_data[: 6 * MIB])
        live_conn = start_upload(
            survivor.endpoint, survivor, f"/{bucket}/live.bin", [], len(live_data)
        )
        live_conn.send(live_data[: 6 * MIB])
        wait_until(
            lambda: {i.key for i in survivor.intents()} == {"dead.bin", "live.bin"},
            "both writes have their intent",
        )
        victim.kill()
        dead_conn.close()

        # the survivor's periodic run finds the dead peer's write and rolls it back
        wait_until(
            lambda: {i.key for i in survivor.intents()} == {"live.bin"},
            "the survivor rolled back the dead gateway's write",
        )
        # its own write was left alone: it completes, acknowledged and recorded
        live_conn.send(live_data[6 * MIB :])
        response = live_conn.getresponse()
        assert response.status == 200, response.read()
        live_conn.close()

        assert_recovered(
            survivor,
            bucket,
            acked={"live.bin": sha256(live_data)},
            interrupted={"dead.bin": sha256(dead_data)},
        )
    finally:
        victim.stop()
        survivor.stop()

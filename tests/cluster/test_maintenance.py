"""Maintenance through HAProxy's runtime API, as HATop does it: drain, then ready."""

from __future__ import annotations

import pytest

from mailring.checks import NotYet
from mailring.checks.serving import check_deadline_s
from mailring.polling.serving import served_by, served_by_each, wait_served
from mailring.polling.wait import eventually

pytestmark = pytest.mark.destructive


@pytest.mark.parametrize("state", ["drain", "maint"])
def test_drained_server_takes_no_new_sessions_and_lets_existing_ones_finish(
        client, nemesis, topology, mail_node, state):
    node = mail_node
    vip = str(topology.vips_owned_by(node)[0].address)
    imap = topology.services["imap"]
    user = topology.users[0]
    assert served_by(client, topology, vip, "imap") == node

    held = client.hold_imap(vip, imap.port, user.address, user.password, max_seconds=60)
    try:
        def ready() -> dict:
            line = held.ready()
            if line is None:
                raise NotYet("the held IMAP session has not logged in yet")
            return line

        opened = eventually(ready, 15, "an IMAP session held open")
        assert node in opened["banner"]
        drain = nemesis.drain(node, "imap", state=state)
        servers = served_by_each(client, topology, [(vip, "imap")] * 6)  # independent: all at once
        assert node not in servers, f"{node} is in {state} but took new sessions: {servers}"
    finally:
        result = held.finish()
    # neither drain nor maint cuts established sessions (only 'shutdown sessions' would)
    assert result["ok"], f"the session opened before the {state} did not finish on {node}: {result}"
    nemesis.heal(drain)
    wait_served(client, topology, vip, "imap", lambda n: n == node, check_deadline_s(topology),
                f"new IMAP sessions on {vip} back on {node} after 'ready'")

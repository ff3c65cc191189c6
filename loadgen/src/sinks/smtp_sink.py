"""A recording SMTP server for Dropline's delivery tests and bench.

Runs on Debian's python3-aiosmtpd. Listens on 127.0.0.1 (port from argv,
0 for any), prints "READY <port>" once listening, then one JSON line per
received message: its Message-ID, idempotency key, recipients, subject,
whether it carried List-Unsubscribe, and whether the key was seen before
(the sink-side check: a repeat is acknowledged but not delivered again).
"""

import asyncio
import json
import sys
from email import message_from_bytes

from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self):
        self.seen = set()

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content)
        key = msg.get("X-Dropline-Idempotency-Key", "")
        duplicate = bool(key) and key in self.seen
        if key:
            self.seen.add(key)
        print(
            json.dumps(
                {
                    "message_id": msg.get("Message-ID", ""),
                    "idempotency_key": key,
                    "to": list(envelope.rcpt_tos),
                    "subject": msg.get("Subject", ""),
                    "list_unsubscribe": msg.get("List-Unsubscribe", ""),
                    "duplicate": duplicate,
                }
            ),
            flush=True,
        )
        return "250 OK"


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(recorder, hostname="localhost"), "127.0.0.1", port
    )
    print("READY", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())

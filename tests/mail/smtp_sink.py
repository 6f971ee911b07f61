"""An SMTP server for the tests (aiosmtpd): every message it accepts is
written to DIR/<n>.eml, whole, before it answers 250. With DELAY_MS, each
recipient is answered only after that pause, so a client can be stopped
while a message is on its way but before the server holds any of it.

    python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.Sink DIR [DELAY_MS]
"""

import asyncio
import itertools
import os


class Sink:
    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    def __init__(self, directory, delay_ms="0"):
        self.directory = directory
        self.delay = int(delay_ms) / 1000
        self.counter = itertools.count(1)
        os.makedirs(directory, exist_ok=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.delay:
            await asyncio.sleep(self.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        partial = os.path.join(self.directory, f".{n}.partial")
        with open(partial, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(partial, os.path.join(self.directory, f"{n}.eml"))
        return "250 Message accepted"

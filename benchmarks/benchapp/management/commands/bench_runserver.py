"""``runserver`` whose sockets send at once (``TCP_NODELAY``), for ``benchmarks/bench_web.py``.

Django's development server writes a response's headers and its body in two
``send()`` calls. With Nagle's algorithm on (the socket default) the second waits
for the client to acknowledge the first, and a client that has nothing to send
delays that acknowledgement by up to 40 ms (Linux's delayed ACK): every keep-alive
request would take ~40 ms whatever the view does. Production servers (gunicorn,
uWSGI, uvicorn) set ``TCP_NODELAY``; so does this one. Nothing else differs.
"""

from __future__ import annotations

import socket
from typing import Any

from django.core.management.commands.runserver import Command as RunserverCommand
from django.core.servers.basehttp import WSGIServer


class NoDelayWSGIServer(WSGIServer):
    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address


class Command(RunserverCommand):
    help = "runserver with TCP_NODELAY on every connection (for the benchmarks)."
    server_cls = NoDelayWSGIServer

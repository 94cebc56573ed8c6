"""A websocket as a page opens one: a minimal RFC 6455 client on a plain socket, with the
browser's session cookie. The app's own test tools run in-process; this one talks to a real daphne.
Every text message goes to `on_text` (from a reader thread) until the server closes."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import threading
import urllib.parse
from collections.abc import Callable

from tests.harness.http_browser import HTTP_TIMEOUT


class WebsocketRefused(AssertionError):
    """The server answered the handshake with an HTTP status instead of switching protocols."""

    def __init__(self, status_line: str) -> None:
        super().__init__(f"websocket refused: {status_line!r}")
        self.status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0


class Websocket:
    def __init__(
        self,
        server_url: str,
        path: str,
        *,
        session: str | None,
        on_text: Callable[[str], None],
        on_close: Callable[[int | None], None],
    ) -> None:
        self._on_text, self._on_close = on_text, on_close
        host, port = urllib.parse.urlparse(server_url).netloc.split(":")
        self._sock = socket.create_connection((host, int(port)), timeout=HTTP_TIMEOUT)
        self._file = self._sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        cookie = f"Cookie: sessionid={session}\r\n" if session else ""
        handshake = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {server_url}\r\n{cookie}\r\n"
        )
        self._sock.sendall(handshake.encode())
        status = self._file.readline().decode()
        if " 101 " not in status:
            self._sock.close()
            raise WebsocketRefused(status.strip())
        while self._file.readline() not in (b"\r\n", b""):
            pass
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_forever, name=f"websocket {path}", daemon=True)
        self._reader.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send_frame(0x8, struct.pack("!H", 1000))
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(timeout=10)

    def _read_forever(self) -> None:
        message = b""
        code = None
        try:
            while True:
                head = self._file.read(2)
                if len(head) < 2:
                    return
                opcode, length = head[0] & 0x0F, head[1] & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", self._file.read(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", self._file.read(8))
                payload = self._file.read(length)  # a server never masks its frames
                if opcode == 0x9:
                    self.send_frame(0xA, payload)
                elif opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    return
                elif opcode in (0x0, 0x1):
                    message += payload
                    if head[0] & 0x80:
                        self._on_text(message.decode())
                        message = b""
        except (OSError, ValueError):
            return
        finally:
            self._on_close(code)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)  # a client always masks
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

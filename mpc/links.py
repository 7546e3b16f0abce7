"""One link of the mesh (mpc/transport.py): the wire protocol between two ranks.

Links.  Each ordered pair of ranks (a, b) has its own TCP connection from a to b: a writes, b
only reads.  On it:

1. a sends 12 plaintext bytes, ``SMT-TLS1`` and its claimed rank (public: roles and ranks are
   part of the session's public description), so b can require exactly that role's certificate;
2. a TLS 1.3 handshake, both sides presenting certificates; each side checks the other's
   against the one pinned for the peer's role (the handshake proves possession of the key; the
   SHA-256 fingerprint is compared as well).  There is no CA and no fallback: a peer without a
   certificate, with an unpinned self-signed one, or with another role's is refused with an
   ``IdentityError`` naming the role and the fingerprint expected;
3. inside TLS, a sends a fresh 256-bit key from the OS's CSPRNG; b answers (inside TLS) that it
   accepted a, which also tells a that its certificate was accepted;
4. the data: AES-256-GCM frames under that key (``4-byte length | ciphertext+tag``; nonce =
   frame counter, so a replayed, reordered, dropped or altered frame fails authentication and
   ends the link).  The key is exactly as secret as the TLS 1.3 channel it travelled in (forward
   secret, ECDHE) and is used for this one link only.

Why not TLS records for the data: Python's ``ssl`` on this OpenSSL 3.0 encrypts TLS records at
about 1.2 GB/s (16 KiB records, per-record overhead); AES-GCM over 4 MiB frames runs at about
8 GB/s (``cryptography``), which keeps the links' cost small next to the computation
(bench/results/secure-links/).  What an observer sees is the same as with TLS records: the
handshake, then authenticated ciphertext with its lengths.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mpc.errors import TransportError
from mpc.identity import Identity

PREAMBLE = b"SMT-TLS1"
SERVICE_PREAMBLE = b"SMT-SVC1"  # a connection to a party service (mpc/service.py): TLS follows at once
MAX_HELLO = 1 << 20


@contextlib.contextmanager
def _pem_file(text: str) -> Iterator[str]:
    """A path OpenSSL can read ``text`` from: an anonymous memory file (Linux), never on disk."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("smt-pem", os.MFD_CLOEXEC)
        try:
            os.write(fd, text.encode())
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(suffix=".pem")  # 0600; removed as soon as OpenSSL has read it
    try:
        os.write(fd, text.encode())
        os.close(fd)
        yield path
    finally:
        os.unlink(path)


def tls_context(identity: Identity, peer_role: str, *, server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # identities are pinned certificates, not host names
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=identity.peer_cert(peer_role))
    with _pem_file(identity.cert_pem) as cert, _pem_file(identity.key_pem) as key:
        ctx.load_cert_chain(cert, key)
    if server:
        ctx.num_tickets = 0  # no resumption: every link does a full handshake with certificates
    return ctx


def tls_server_context(identity: Identity, trusted_pems: list[str]) -> ssl.SSLContext:
    """A service's side: any of ``trusted_pems`` may connect (the caller maps the fingerprint
    it presented to a role and refuses what it does not expect)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata="".join(trusted_pems))
    with _pem_file(identity.cert_pem) as cert, _pem_file(identity.key_pem) as key:
        ctx.load_cert_chain(cert, key)
    ctx.num_tickets = 0
    return ctx


def link_keys(key: bytes, low: int, high: int) -> tuple[bytes, bytes]:
    """One service link carries both directions: (key low->high, key high->low), derived
    from the 256-bit key the lower rank sent inside TLS (HKDF-SHA256, distinct labels)."""
    from mpc.prg import derive

    return derive(key, f"link {low}->{high}"), derive(key, f"link {high}->{low}")


_FRAME = 4 << 20  # plaintext bytes per AEAD frame
ACK = b"SMT-OK"


class TlsLink:
    """A TLS 1.3 connection driven through memory BIOs, used for the handshake, the key and the
    acknowledgement (steps 2-3 of the module docstring)."""

    def __init__(self, raw: socket.socket, ctx: ssl.SSLContext, *, server_side: bool, deadline: float):
        self.raw = raw
        self.deadline = deadline  # the whole handshake and key exchange, however slowly the peer sends
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=server_side)

    def _pump(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the TLS handshake did not finish in time")
        self.raw.settimeout(min(left, 30.0))
        # exactly one TLS record (5-byte header, then its body): what follows the last record
        # of the exchange belongs to the AEAD frames and must stay in the socket
        head = recv_exact(self.raw, 5)
        self._in.write(bytes(head) + bytes(recv_exact(self.raw, struct.unpack("!H", head[3:5])[0])))

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.raw.sendall(data)

    def handshake(self) -> None:
        while True:
            try:
                self._obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._pump()
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    self._flush()  # the alert, so the peer learns why
                raise

    def send(self, data: bytes) -> None:
        self._obj.write(data)
        self._flush()

    def recv_exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            try:
                out += self._obj.read(n - len(out))
            except ssl.SSLWantReadError:
                self._pump()
            except ssl.SSLZeroReturnError:
                raise ConnectionError("the peer closed the TLS channel") from None
        return out

    def send_msg(self, obj: dict) -> None:
        """A control message inside TLS: 4-byte length, then JSON."""
        data = json.dumps(obj).encode()
        self.send(struct.pack("!I", len(data)) + data)

    def recv_msg(self) -> dict:
        (n,) = struct.unpack("!I", self.recv_exact(4))
        if n > MAX_HELLO:
            raise TransportError(f"control message of {n} bytes is too large")
        return json.loads(self.recv_exact(n))

    def drained(self) -> bool:
        """Nothing left over in TLS: from here the socket carries AEAD frames only."""
        return self._in.pending == 0 and self._obj.pending() == 0

    def getpeercert(self) -> bytes:
        return self._obj.getpeercert(binary_form=True) or b""


class FrameWriter:
    """The writing end of a link: AES-256-GCM frames, nonce = frame counter.  A message is one
    frame (header and payload) when small, else a header frame and payload frames encrypted
    straight from the tensor's memory into one reused buffer."""

    def __init__(self, raw: socket.socket, key: bytes, peer: int):
        self.raw, self.peer = raw, peer
        self._aead = AESGCM(key)
        self._n = 0
        self._lock = threading.Lock()
        self._buf = bytearray(4 + _FRAME + 16)

    def _frame(self, plaintext) -> None:
        size = len(plaintext) + 16
        out = memoryview(self._buf)
        self._aead.encrypt_into(self._n.to_bytes(12, "big"), plaintext, None, out[4 : 4 + size])
        self._n += 1
        struct.pack_into("!I", self._buf, 0, size)
        self.raw.sendall(out[: 4 + size])

    def send_message(self, header: bytes, payload: memoryview) -> None:
        with self._lock:
            if len(payload) <= 65536:
                self._frame(header + payload.tobytes())
                return
            self._frame(header)
            for off in range(0, len(payload), _FRAME):
                self._frame(payload[off : off + _FRAME])

    def send_hello(self, obj: dict) -> None:
        self.send_message(b"", memoryview(json.dumps(obj).encode()))

    def settimeout(self, t) -> None:
        self.raw.settimeout(t)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.raw.close()


class FrameReader:
    """The reading end of a link: authenticates and decrypts each frame in order, into the
    caller's buffer when given."""

    def __init__(self, raw: socket.socket, key: bytes, peer: int):
        self.raw, self.peer = raw, peer
        self._aead = AESGCM(key)
        self._n = 0
        self._ct = bytearray(_FRAME + 16)

    def next_size(self) -> int:
        """Plaintext size of the next frame (reads its length prefix)."""
        (n,) = struct.unpack("!I", recv_exact(self.raw, 4))
        if not 16 <= n <= _FRAME + 16:
            raise TransportError(f"malformed frame of {n} bytes from rank {self.peer}")
        return n - 16

    def read_into(self, size: int, out: memoryview) -> None:
        """Decrypt the frame announced by ``next_size`` into ``out`` (exactly ``size`` bytes)."""
        ct = memoryview(self._ct)[: size + 16]
        _recv_into_exact(self.raw, ct)
        try:
            self._aead.decrypt_into(self._n.to_bytes(12, "big"), ct, None, out)
        except Exception:  # cryptography's InvalidTag
            raise TransportError(f"a frame from rank {self.peer} failed authentication (altered, replayed or "
                                 "reordered on the network); the link is closed") from None  # fmt: skip
        self._n += 1

    def read_frame(self) -> bytearray:
        size = self.next_size()
        out = bytearray(size)
        self.read_into(size, memoryview(out))
        return out

    def read_hello(self) -> dict:
        data = self.read_frame()
        if len(data) > MAX_HELLO:
            raise TransportError(f"hello message of {len(data)} bytes is too large")
        return json.loads(data)

    def settimeout(self, t) -> None:
        self.raw.settimeout(t)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.raw.close()


def _recv_into_exact(sock, view: memoryview) -> None:
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise ConnectionError("connection closed")
        got += k


def recv_exact(sock, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise ConnectionError("connection closed")
        got += k
    return buf  # type: ignore[return-value]

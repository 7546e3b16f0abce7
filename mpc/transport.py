"""Mutually authenticated TLS 1.3 links between the parties of one session (the "mesh").

Why our own: torch 2.13's gloo has no TLS transport, and its rendezvous store is plaintext and
unauthenticated (shared/FACTS.md).  Everything a session sends -- shares, openings, seeds, the
dealer's requests and answers, control messages -- goes through ``Mesh`` (mpc/tls_backend.py
makes it torch.distributed's process group), so every byte between parties, dealer and
rendezvous is a TLS 1.3 record under keys only the two endpoints hold.

Links.  Each ordered pair of ranks (a, b) has its own TLS connection from a to b: a writes,
b only reads (one thread per SSL object; OpenSSL objects are not safe to read and write from two
threads at once).  Before its ClientHello the connecting side sends 12 plaintext bytes, ``SMT-TLS1``
and its claimed rank (public: roles and ranks are part of the session's public description), so
the accepting side can require exactly that role's pinned certificate.  Both sides present
certificates; each checks the other's against the one configured for the peer's role (the
handshake verifies possession of the key; the SHA-256 fingerprint of the certificate is then
compared as well).  There is no CA and no fallback: a peer without a certificate, with a
self-signed one that is not pinned, or with another role's certificate is refused with an
``IdentityError`` that names the role and the fingerprint expected.

Rendezvous.  Rank 0 (the data owner) listens on exactly the address it was given.  Every other
rank opens its own listener on its advertised address (by default the local address that routes
to the rendezvous), connects to rank 0 and tells it that address; rank 0 then connects back to
each and sends the address book and a fresh session id; finally every rank connects to every
other.  Each hello inside TLS carries the session id, so a link cannot be spliced in from
another session.  Listeners close as soon as the mesh is complete.

Frames: ``channel (u64) | tag (i64) | length (u64) | payload``; a channel is one process group.
Messages between two ranks on one (channel, tag) arrive in order; receives are matched to
messages in the order they were posted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from mpc.errors import IdentityError, TransportError
from mpc.identity import Identity, der_fingerprint, role_of_rank

PREAMBLE = b"SMT-TLS1"
_HEADER = struct.Struct("!QqQ")
_MAX_FRAME = int(os.environ.get("SMT_MAX_FRAME_BYTES", str(16 << 30)))
_MAX_HELLO = 1 << 20


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


def _context(identity: Identity, peer_role: str, *, server: bool) -> ssl.SSLContext:
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


def _send_json(sock: ssl.SSLSocket, obj: dict) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv_exact(sock, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise ConnectionError("connection closed")
        got += k
    return bytes(buf)


def _recv_json(sock) -> dict:
    (n,) = struct.unpack("!I", _recv_exact(sock, 4))
    if n > _MAX_HELLO:
        raise TransportError(f"hello message of {n} bytes is too large")
    return json.loads(_recv_exact(sock, n))


@dataclass(kw_only=True)
class MeshConfig:
    rank: int
    parties: int  # computing parties; the dealer is rank ``parties``
    rendezvous: tuple[str, int]  # rank 0's listening address, as every party reaches it
    identity: Identity
    timeout: float = 120.0  # for the whole set-up
    advertise: str | None = None  # this party's listening host (ranks > 0); default: route to rendezvous

    @property
    def world(self) -> int:
        return self.parties + 1

    def role(self, rank: int) -> str:
        return role_of_rank(rank, self.parties)


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransportError(f"timed out {what}; check that every party is running and can reach the others")
    return left


def _connect(cfg: MeshConfig, addr: tuple[str, int], peer: int, deadline: float) -> ssl.SSLSocket:
    """Our outgoing link to ``peer`` at ``addr`` (retried until it listens), authenticated both ways."""
    role = cfg.role(peer)
    expected = cfg.identity.peer_fingerprint(role)
    ctx = _context(cfg.identity, role, server=False)
    while True:
        try:
            raw = socket.create_connection(addr, timeout=min(5.0, _remaining(deadline, f"connecting to {role} at {addr[0]}:{addr[1]}")))
            break
        except OSError:
            time.sleep(0.05)
    raw.sendall(PREAMBLE + struct.pack("!I", cfg.rank))
    try:
        tls = ctx.wrap_socket(raw, server_side=False)
    except ssl.SSLCertVerificationError as err:
        raw.close()
        raise IdentityError(
            f"refused {role} at {addr[0]}:{addr[1]}: it did not present {role}'s pinned certificate "
            f"{expected} ({err.verify_message}); check the certificate configured for {role}"
        ) from None
    except (ssl.SSLError, OSError) as err:
        raw.close()
        raise IdentityError(f"TLS handshake with {role} at {addr[0]}:{addr[1]} failed ({err}); "
                            f"it must hold the key of {role}'s pinned certificate {expected}") from None  # fmt: skip
    got = der_fingerprint(tls.getpeercert(binary_form=True) or b"")
    if got != expected:
        tls.close()
        raise IdentityError(f"refused {role} at {addr[0]}:{addr[1]}: expected certificate {expected}, got {got}")
    return tls


def _accept(cfg: MeshConfig, listener: socket.socket, deadline: float, seen: set[int]) -> tuple[int, ssl.SSLSocket]:
    """One incoming link; returns (peer rank, socket) once the peer proved its claimed role."""
    listener.settimeout(_remaining(deadline, "waiting for the other parties to connect"))
    try:
        raw, addr = listener.accept()
    except TimeoutError:
        raise TransportError("timed out waiting for the other parties to connect; check that every party "
                             "is running, has the right rendezvous address and can reach this host") from None  # fmt: skip
    where = f"{addr[0]}:{addr[1]}"
    raw.settimeout(min(10.0, _remaining(deadline, "reading a connection's preamble")))
    try:
        pre = _recv_exact(raw, len(PREAMBLE) + 4)
    except (OSError, ConnectionError):
        raw.close()
        raise IdentityError(f"refused a connection from {where}: it closed before naming its role") from None
    if pre[: len(PREAMBLE)] != PREAMBLE:
        raw.close()
        raise IdentityError(f"refused a connection from {where}: not an SMT TLS link (bad preamble)")
    (peer,) = struct.unpack("!I", pre[len(PREAMBLE):])
    if not 0 <= peer < cfg.world or peer == cfg.rank or peer in seen:
        raw.close()
        raise IdentityError(f"refused a connection from {where}: it claims rank {peer}, which is not an expected peer")
    role = cfg.role(peer)
    expected = cfg.identity.peer_fingerprint(role)
    try:
        tls = _context(cfg.identity, role, server=True).wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as err:
        raw.close()
        reason = getattr(err, "verify_message", None) or getattr(err, "reason", None) or str(err)
        raise IdentityError(
            f"refused {role} (rank {peer}) from {where}: it did not prove {role}'s pinned certificate "
            f"{expected} ({reason}); a party without a certificate, a self-signed one or another role's is refused"
        ) from None
    got = der_fingerprint(tls.getpeercert(binary_form=True) or b"")
    if got != expected:
        tls.close()
        raise IdentityError(f"refused {role} (rank {peer}) from {where}: expected certificate {expected}, got {got}")
    return peer, tls


def _local_address_toward(addr: tuple[str, int]) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(addr)  # no packet is sent: the kernel only picks the route
        return s.getsockname()[0]


class Mesh:
    """The authenticated links of one session, as seen by one rank."""

    def __init__(self, cfg: MeshConfig, outgoing: dict[int, ssl.SSLSocket], incoming: dict[int, ssl.SSLSocket], session: str):
        self.cfg = cfg
        self.rank = cfg.rank
        self.session = session
        self._out = outgoing
        self._in = incoming
        self._send_locks = {p: threading.Lock() for p in outgoing}
        self._cond = threading.Condition()
        self._boxes: dict[tuple[int, int, int], dict] = {}
        self._failed: dict[int, Exception] = {}
        self._closing = False
        self.bytes_sent = 0
        for sock in list(outgoing.values()) + list(incoming.values()):
            sock.settimeout(None)
        self._readers = [threading.Thread(target=self._read_loop, args=(p, s), daemon=True, name=f"smt-link-{p}")
                         for p, s in incoming.items()]  # fmt: skip
        for t in self._readers:
            t.start()

    # -- sending -------------------------------------------------------------------------
    def send(self, peer: int, channel: int, tag: int, payload) -> None:
        view = memoryview(payload).cast("B")
        if peer in self._failed and not isinstance(self._failed[peer], EOFError):
            raise self._link_error(peer)
        header = _HEADER.pack(channel, tag, view.nbytes)
        try:
            with self._send_locks[peer]:
                if view.nbytes <= 65536:
                    self._out[peer].sendall(header + view.tobytes())
                else:
                    self._out[peer].sendall(header)
                    self._out[peer].sendall(view)
        except KeyError:
            raise TransportError(f"rank {peer} is not a peer of rank {self.rank}") from None
        except OSError as err:
            raise TransportError(f"sending to {self.cfg.role(peer)} (rank {peer}) failed: {err}") from None
        self.bytes_sent += view.nbytes

    # -- receiving -----------------------------------------------------------------------
    def _box(self, key) -> dict:
        box = self._boxes.get(key)
        if box is None:
            box = self._boxes[key] = {"arrived": {}, "n_in": 0, "n_posted": 0}
        return box

    def post_recv(self, peer: int, channel: int, tag: int) -> tuple:
        """A ticket for the next message from ``peer`` on (channel, tag), in posting order."""
        if peer not in self._in:
            raise TransportError(f"rank {peer} is not a peer of rank {self.rank}")
        with self._cond:
            box = self._box((peer, channel, tag))
            ticket = box["n_posted"]
            box["n_posted"] += 1
        return (peer, channel, tag, ticket)

    def wait_recv(self, ticket: tuple, timeout: float | None = None) -> bytearray:
        peer, channel, tag, n = ticket
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            box = self._box((peer, channel, tag))
            while n not in box["arrived"]:
                if peer in self._failed:
                    raise self._link_error(peer)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TransportError(f"timed out after {timeout:.0f} s waiting for {self.cfg.role(peer)} (rank {peer})")
                self._cond.wait(timeout=left if left is not None else 5.0)
            return box["arrived"].pop(n)

    def recv(self, peer: int, channel: int, tag: int, timeout: float | None = None) -> bytearray:
        return self.wait_recv(self.post_recv(peer, channel, tag), timeout)

    def _read_loop(self, peer: int, sock: ssl.SSLSocket) -> None:
        try:
            while True:
                try:
                    head = _recv_exact(sock, _HEADER.size)
                except ConnectionError:
                    raise EOFError(f"{self.cfg.role(peer)} (rank {peer}) closed its link") from None
                channel, tag, n = _HEADER.unpack(head)
                if n > _MAX_FRAME:
                    raise TransportError(f"{self.cfg.role(peer)} sent a frame of {n} bytes (limit {_MAX_FRAME})")
                buf = bytearray(n)
                view, got = memoryview(buf), 0
                while got < n:
                    k = sock.recv_into(view[got:], min(n - got, 1 << 24))
                    if not k:
                        raise EOFError(f"{self.cfg.role(peer)} (rank {peer}) closed its link mid-message")
                    got += k
                with self._cond:
                    box = self._box((peer, channel, tag))
                    box["arrived"][box["n_in"]] = buf
                    box["n_in"] += 1
                    self._cond.notify_all()
        except Exception as err:  # noqa: BLE001 - recorded, raised to whoever waits on this peer
            with self._cond:
                self._failed[peer] = err
                self._cond.notify_all()

    def _link_error(self, peer: int) -> TransportError:
        err = self._failed[peer]
        if isinstance(err, TransportError):
            return err
        if self._closing:
            return TransportError("the session's links are closed")
        return TransportError(f"link from {self.cfg.role(peer)} (rank {peer}) failed: {err}; that party has "
                              f"probably stopped (see its log)")  # fmt: skip

    def close(self) -> None:
        self._closing = True
        for sock in list(self._out.values()):
            with contextlib.suppress(OSError):
                sock.close()
        for sock in list(self._in.values()):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))  # exactly the address given: never all interfaces
    s.listen(64)
    return s


def connect_mesh(cfg: MeshConfig, listener: socket.socket | None = None) -> Mesh:
    """Set up every link of this rank; raises IdentityError / TransportError (and closes all)."""
    deadline = time.monotonic() + cfg.timeout
    outgoing: dict[int, ssl.SSLSocket] = {}
    incoming: dict[int, ssl.SSLSocket] = {}
    hellos: dict[int, dict] = {}
    errors: list[BaseException] = []
    try:
        if cfg.rank == 0:
            listener = listener or _bind(*cfg.rendezvous)
            while len(incoming) < cfg.world - 1:
                peer, sock = _accept(cfg, listener, deadline, set(incoming))
                sock.settimeout(_remaining(deadline, "reading a hello"))
                hello = _recv_json(sock)
                if hello.get("world") != cfg.world:
                    raise TransportError(f"{cfg.role(peer)} expects {hello.get('world')} ranks, this session has {cfg.world}")
                incoming[peer], hellos[peer] = sock, hello
            session = secrets.token_hex(16)
            book = {str(p): h["listen"] for p, h in hellos.items()}
            for peer in range(1, cfg.world):
                h, port = hellos[peer]["listen"]
                outgoing[peer] = _connect(cfg, (h, port), peer, deadline)
                _send_json(outgoing[peer], {"rank": 0, "session": session, "book": book})
            listener.close()
            return Mesh(cfg, outgoing, incoming, session)

        my_host = cfg.advertise or _local_address_toward(cfg.rendezvous)
        listener = listener or _bind(my_host, 0)
        listen = [my_host, listener.getsockname()[1]]

        def accept_all() -> None:
            try:
                while len(incoming) < cfg.world - 1:
                    peer, sock = _accept(cfg, listener, deadline, set(incoming))
                    sock.settimeout(_remaining(deadline, "reading a hello"))
                    hellos[peer] = _recv_json(sock)
                    incoming[peer] = sock
            except BaseException as err:  # noqa: BLE001 - handed to the main thread
                errors.append(err)

        acceptor = threading.Thread(target=accept_all, daemon=True, name="smt-accept")
        acceptor.start()
        outgoing[0] = _connect(cfg, cfg.rendezvous, 0, deadline)
        _send_json(outgoing[0], {"rank": cfg.rank, "world": cfg.world, "listen": listen})
        while 0 not in hellos and not errors:
            _remaining(deadline, f"waiting for {cfg.role(0)} to call back")
            time.sleep(0.01)
        if errors:
            raise errors[0]
        session, book = hellos[0]["session"], hellos[0]["book"]
        for peer in range(1, cfg.world):
            if peer != cfg.rank:
                h, port = book[str(peer)]
                outgoing[peer] = _connect(cfg, (h, int(port)), peer, deadline)
                _send_json(outgoing[peer], {"rank": cfg.rank, "session": session})
        acceptor.join(timeout=_remaining(deadline, "waiting for the other parties to connect"))
        if errors:
            raise errors[0]
        if acceptor.is_alive():
            raise TransportError("timed out waiting for the other parties to connect")
        for peer, hello in hellos.items():
            if peer != 0 and hello.get("session") != session:
                raise IdentityError(f"{cfg.role(peer)} (rank {peer}) joined with another session's id; refused")
        listener.close()
        return Mesh(cfg, outgoing, incoming, session)
    except BaseException:
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.close()
        for sock in list(outgoing.values()) + list(incoming.values()):
            with contextlib.suppress(OSError):
                sock.close()
        raise

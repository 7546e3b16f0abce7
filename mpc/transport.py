"""Mutually authenticated, encrypted links between the parties of one session (the "mesh").

Why our own: torch 2.13's gloo has no TLS transport, and its rendezvous store is plaintext and
unauthenticated (shared/FACTS.md).  Everything a session sends -- shares, openings, keys, the
dealer's requests and answers, control messages -- goes through ``Mesh`` (mpc/tls_backend.py
makes it torch.distributed's process group).  One link -- preamble, TLS 1.3 handshake with
pinned certificates, a key inside TLS, then AES-256-GCM frames -- is mpc/links.py; this module
sets up the links of a session and delivers messages over them.

Rendezvous.  Rank 0 (the data owner) listens on exactly the address it was given.  Every other
rank opens its own listener on its advertised address (by default the local address that routes
to the rendezvous), connects to rank 0 and tells it that address; rank 0 then connects back to
each and sends the address book and a fresh session id; finally every rank connects to every
other.  Each hello carries the session id, so a link cannot be spliced in from another session.
Listeners close as soon as the mesh is complete.

Messages: a 24-byte header ``channel (u64) | tag (i64) | length (u64)`` then the payload, split
over frames of at most 4 MiB; a channel is one process group.  Messages between two ranks on one
(channel, tag) arrive in order; receives are matched to messages in the order they were posted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

from mpc.errors import IdentityError, TransportError
from mpc.identity import Identity, der_fingerprint, role_of_rank
from mpc.links import (
    ACK,
    PREAMBLE,
    SERVICE_PREAMBLE,
    FrameReader,
    FrameWriter,
    TlsLink,
    link_keys,
    recv_exact,
    tls_context,  # fmt: skip
)

_HEADER = struct.Struct("!QqQ")
_MAX_FRAME = int(os.environ.get("SMT_MAX_FRAME_BYTES", str(16 << 30)))


@dataclass(kw_only=True)
class _Party:
    """This rank in its session: what both ways of setting up the links need."""

    rank: int
    parties: int  # computing parties; the dealer is rank ``parties``
    identity: Identity
    timeout: float = 120.0  # for the whole set-up

    @property
    def world(self) -> int:
        return self.parties + 1

    def role(self, rank: int) -> str:
        return role_of_rank(rank, self.parties)


@dataclass(kw_only=True)
class MeshConfig(_Party):
    rendezvous: tuple[str, int]  # rank 0's listening address, as every party reaches it
    advertise: str | None = None  # this party's listening host (ranks > 0); default: route to rendezvous

    def connect(self) -> Mesh:
        return connect_mesh(self)


@dataclass(kw_only=True)
class ServiceMeshConfig(_Party):
    """A session against party services (mpc/service.py): each rank dials the services of the
    higher ranks (``endpoints``) and receives the links of the lower ranks from its service's
    supervisor (``inbox``: a Unix socket that hands over authenticated sockets).  The data owner
    (rank 0) only dials out, so it needs no listening port."""

    session: str  # chosen by the data owner; routes links at the services
    endpoints: dict[int, tuple[str, int]]  # rank -> service address, for every rank above ours
    inbox: socket.socket | None = None
    open: dict | None = None  # the data owner: open the session at each service first ({"model": name})

    def connect(self) -> Mesh:
        return connect_service_mesh(self)


def open_sessions(cfg: ServiceMeshConfig, deadline: float) -> list[socket.socket]:
    """The data owner opens its session at the dealer, then at the model owner; the connections
    stay open as long as the session (closing one ends the session at that service)."""
    ident = cfg.identity
    dealer, model_owner = cfg.endpoints[2], cfg.endpoints[1]
    asks = [
        ("dealer", dealer, {"rank": 2, "peer_fingerprint": ident.peer_fingerprint("model-owner")}),
        ("model-owner", model_owner, {"rank": 1, "peer_fingerprint": ident.peer_fingerprint("dealer"),
                                      "dealer": list(dealer), "model": (cfg.open or {}).get("model")}),
    ]  # fmt: skip
    controls: list[socket.socket] = []
    try:
        for role, addr, extra in asks:
            tls = dial(ident, role, addr, deadline)
            request(tls, {"op": "open", "session": cfg.session, "parties": cfg.parties, **extra}, role,
                    f"{addr[0]}:{addr[1]}")  # fmt: skip
            controls.append(tls.raw)
    except BaseException:
        for c in controls:
            c.close()
        raise
    return controls


def dial(identity: Identity, role: str, addr: tuple[str, int], deadline: float) -> TlsLink:
    """A TLS 1.3 connection to ``role``'s service at ``addr``, its pinned certificate checked.
    Retries refused connections until ``deadline`` (a service being restarted)."""
    where = f"{addr[0]}:{addr[1]}"
    expected = identity.peer_fingerprint(role)
    last: Exception | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TransportError(f"the {role} service at {where} is unreachable ({last}); check that it runs, "
                                 "that this host can reach it, and the endpoint configured for it") from None  # fmt: skip
        try:
            raw = socket.create_connection(addr, timeout=min(5.0, left))
            break
        except OSError as err:
            last = err
            time.sleep(min(0.2, max(0.0, left)))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        raw.sendall(SERVICE_PREAMBLE)
        tls = TlsLink(raw, tls_context(identity, role, server=False), server_side=False, deadline=deadline)
        tls.handshake()
    except ssl.SSLCertVerificationError as err:
        raw.close()
        raise IdentityError(f"refused the {role} service at {where}: it did not present the pinned certificate "
                            f"{expected} ({err.verify_message})") from None  # fmt: skip
    except (ssl.SSLError, OSError) as err:
        raw.close()
        raise IdentityError(f"TLS handshake with the {role} service at {where} failed ({err}); it must hold the key "
                            f"of the pinned certificate {expected} and trust this party's {identity.fingerprint}") from None  # fmt: skip
    got = der_fingerprint(tls.getpeercert())
    if got != expected:
        raw.close()
        raise IdentityError(f"refused the {role} service at {where}: expected certificate {expected}, got {got}")
    return tls


def request(tls: TlsLink, message: dict, role: str, where: str) -> dict:
    """Send a control message to a service and return its answer; a refusal raises, naming it."""
    try:
        tls.send_msg(message)
        answer = tls.recv_msg()
    except (ssl.SSLError, OSError, ConnectionError) as err:
        tls.raw.close()
        raise IdentityError(f"the {role} service at {where} closed the connection ({err}); it refused this "
                            "party's certificate or is shutting down") from None  # fmt: skip
    if not answer.get("ok"):
        tls.raw.close()
        from mpc.errors import ServiceRefused

        raise ServiceRefused(f"the {role} service at {where} refused: {answer.get('error', 'no reason given')}",
                             code=answer.get("code", "refused"))  # fmt: skip
    return answer


def _dial_link(cfg: ServiceMeshConfig, peer: int, deadline: float) -> tuple[FrameWriter, FrameReader]:
    role = cfg.role(peer)
    host, port = cfg.endpoints[peer]
    where = f"{host}:{port}"
    while True:
        tls = dial(cfg.identity, role, (host, port), deadline)
        key = secrets.token_bytes(32)
        try:
            request(tls, {"op": "link", "session": cfg.session, "rank": cfg.rank, "to": peer,
                          "key": key.hex()}, role, where)  # fmt: skip
            break
        except Exception as err:  # the data owner may not have opened the session there yet
            if getattr(err, "code", None) != "unknown-session" or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    if not tls.drained():
        tls.raw.close()
        raise TransportError(f"the {role} service at {where} sent data before the link was set up")
    out_key, in_key = link_keys(key, cfg.rank, peer)
    return FrameWriter(tls.raw, out_key, peer), FrameReader(tls.raw, in_key, peer)


def receive_link(inbox: socket.socket, timeout: float) -> tuple[dict, socket.socket]:
    """A link handed over by this party's service supervisor: (its description, the socket)."""
    inbox.settimeout(timeout)
    msg, fds, _flags, _addr = socket.recv_fds(inbox, 65536, 1)
    if not msg or not fds:
        raise TransportError("the service supervisor closed this session's link inbox")
    return json.loads(msg), socket.socket(fileno=fds[0])


def connect_service_mesh(cfg: ServiceMeshConfig) -> Mesh:
    if cfg.parties != 2:
        raise TransportError("party services run two-party sessions (data owner, model owner, dealer)")
    deadline = time.monotonic() + cfg.timeout
    outgoing: dict[int, FrameWriter] = {}
    incoming: dict[int, FrameReader] = {}
    controls = open_sessions(cfg, deadline) if cfg.open is not None else []
    try:
        for peer in range(cfg.rank + 1, cfg.world):
            outgoing[peer], incoming[peer] = _dial_link(cfg, peer, deadline)
        while len(outgoing) < cfg.world - 1:
            if cfg.inbox is None:
                raise TransportError(f"rank {cfg.rank} has lower-ranked peers but no service inbox")
            try:
                info, raw = receive_link(cfg.inbox, _remaining(deadline, "waiting for the other parties' links"))
            except TimeoutError:
                raise TransportError("timed out waiting for the other parties' links; check that they run and "
                                     "can reach this service") from None  # fmt: skip
            peer = int(info["rank"])
            role = cfg.role(peer) if 0 <= peer < cfg.rank else None
            if role is None or peer in outgoing or info.get("session") != cfg.session:
                raw.close()
                raise IdentityError(f"refused a link claiming rank {peer}: not an expected peer of this session")
            if info.get("fingerprint") != cfg.identity.peer_fingerprint(role):
                raw.close()
                raise IdentityError(f"refused {role} (rank {peer}): expected certificate "
                                    f"{cfg.identity.peer_fingerprint(role)}, got {info.get('fingerprint')}")  # fmt: skip
            in_key, out_key = link_keys(bytes.fromhex(info["key"]), peer, cfg.rank)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            outgoing[peer], incoming[peer] = FrameWriter(raw, out_key, peer), FrameReader(raw, in_key, peer)
        mesh = Mesh(cfg, outgoing, incoming, cfg.session)  # type: ignore[arg-type]
        mesh.controls = controls
        return mesh
    except BaseException:
        for link in list(outgoing.values()) + list(incoming.values()):
            link.close()
        for c in controls:
            c.close()
        raise


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransportError(f"timed out {what}; check that every party is running and can reach the others")
    return left


def _connect(cfg: MeshConfig, addr: tuple[str, int], peer: int, deadline: float) -> FrameWriter:
    """Our outgoing link to ``peer`` at ``addr`` (retried until it listens), authenticated both ways."""
    role = cfg.role(peer)
    expected = cfg.identity.peer_fingerprint(role)
    ctx = tls_context(cfg.identity, role, server=False)
    while True:
        try:
            raw = socket.create_connection(addr, timeout=min(5.0, _remaining(deadline, f"connecting to {role} at {addr[0]}:{addr[1]}")))
            break
        except OSError:
            time.sleep(0.05)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small messages are rounds: never wait for Nagle
    raw.sendall(PREAMBLE + struct.pack("!I", cfg.rank))
    raw.settimeout(min(30.0, _remaining(deadline, f"handshaking with {role}")))
    tls = TlsLink(raw, ctx, server_side=False, deadline=deadline)
    try:
        tls.handshake()
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
    got = der_fingerprint(tls.getpeercert())
    if got != expected:
        raw.close()
        raise IdentityError(f"refused {role} at {addr[0]}:{addr[1]}: expected certificate {expected}, got {got}")
    key = secrets.token_bytes(32)  # this link's frame key, sent inside TLS (module docstring, step 3)
    try:
        tls.send(key)
        ack = tls.recv_exact(len(ACK))
    except (ssl.SSLError, OSError) as err:
        raw.close()
        raise IdentityError(f"{role} at {addr[0]}:{addr[1]} refused this party ({err}); it must pin this party's "
                            f"certificate {cfg.identity.fingerprint} for role {cfg.role(cfg.rank)}") from None  # fmt: skip
    if ack != ACK or not tls.drained():
        raw.close()
        raise TransportError(f"{role} at {addr[0]}:{addr[1]} did not acknowledge the link key")
    return FrameWriter(raw, key, peer)


def _accept(cfg: MeshConfig, listener: socket.socket, deadline: float, seen: set[int]) -> tuple[int, FrameReader]:
    """One incoming link; returns (peer rank, socket) once the peer proved its claimed role."""
    listener.settimeout(_remaining(deadline, "waiting for the other parties to connect"))
    try:
        raw, addr = listener.accept()
    except TimeoutError:
        raise TransportError("timed out waiting for the other parties to connect; check that every party "
                             "is running, has the right rendezvous address and can reach this host") from None  # fmt: skip
    where = f"{addr[0]}:{addr[1]}"
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.settimeout(min(10.0, _remaining(deadline, "reading a connection's preamble")))
    try:
        pre = recv_exact(raw, len(PREAMBLE) + 4)
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
    tls = TlsLink(raw, tls_context(cfg.identity, role, server=True), server_side=True, deadline=deadline)
    try:
        tls.handshake()
    except (ssl.SSLError, OSError) as err:
        raw.close()
        reason = getattr(err, "verify_message", None) or getattr(err, "reason", None) or str(err)
        raise IdentityError(
            f"refused {role} (rank {peer}) from {where}: it did not prove {role}'s pinned certificate "
            f"{expected} ({reason}); a party without a certificate, a self-signed one or another role's is refused"
        ) from None
    got = der_fingerprint(tls.getpeercert())
    if got != expected:
        raw.close()
        raise IdentityError(f"refused {role} (rank {peer}) from {where}: expected certificate {expected}, got {got}")
    try:
        key = tls.recv_exact(32)
        tls.send(ACK)
    except (ssl.SSLError, OSError) as err:
        raw.close()
        raise TransportError(f"{role} (rank {peer}) from {where} left during the key exchange ({err})") from None
    if not tls.drained():
        raw.close()
        raise TransportError(f"{role} (rank {peer}) from {where} sent data before the link key was acknowledged")
    return peer, FrameReader(raw, key, peer)


def _local_address_toward(addr: tuple[str, int]) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(addr)  # no packet is sent: the kernel only picks the route
        return s.getsockname()[0]


class Mesh:
    """The authenticated links of one session, as seen by one rank."""

    def __init__(self, cfg: MeshConfig, outgoing: dict[int, FrameWriter], incoming: dict[int, FrameReader], session: str):
        self.cfg = cfg
        self.rank = cfg.rank
        self.session = session
        self._out = outgoing
        self._in = incoming
        self._cond = threading.Condition()
        self._boxes: dict[tuple[int, int, int], dict] = {}
        self._failed: dict[int, Exception] = {}
        self._closing = False
        self.controls: list[socket.socket] = []  # a service session's control connections
        for link in list(outgoing.values()) + list(incoming.values()):
            link.settimeout(None)
        self._readers = [threading.Thread(target=self._read_loop, args=(p, r), daemon=True, name=f"smt-link-{p}")
                         for p, r in incoming.items()]  # fmt: skip
        for t in self._readers:
            t.start()

    # -- sending -------------------------------------------------------------------------
    def send(self, peer: int, channel: int, tag: int, payload) -> None:
        view = memoryview(payload).cast("B")
        try:
            writer = self._out[peer]
        except KeyError:
            raise TransportError(f"rank {peer} is not a peer of rank {self.rank}") from None
        try:
            writer.send_message(_HEADER.pack(channel, tag, view.nbytes), view)
        except OSError as err:
            raise TransportError(f"sending to {self.cfg.role(peer)} (rank {peer}) failed: {err}; that party has "
                                 "probably stopped (see its log)") from None  # fmt: skip

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

    def wait_recv(self, ticket: tuple, timeout: float | None = None):
        """The message of ``ticket`` (a bytes-like object), waiting at most ``timeout`` seconds."""
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

    def recv(self, peer: int, channel: int, tag: int, timeout: float | None = None):
        return self.wait_recv(self.post_recv(peer, channel, tag), timeout)

    def _read_loop(self, peer: int, reader: FrameReader) -> None:
        hs = _HEADER.size
        try:
            while True:
                try:
                    first = reader.read_frame()
                except ConnectionError:
                    raise EOFError(f"{self.cfg.role(peer)} (rank {peer}) closed its link") from None
                channel, tag, n = _HEADER.unpack_from(first)
                if n > _MAX_FRAME:
                    raise TransportError(f"{self.cfg.role(peer)} sent a message of {n} bytes (limit {_MAX_FRAME})")
                got = len(first) - hs
                if got == n:
                    message = memoryview(first)[hs:]
                else:
                    buf = np.empty(n, dtype=np.uint8)  # decrypted straight into it, frame by frame
                    view = memoryview(buf)  # type: ignore[arg-type]
                    view[:got] = memoryview(first)[hs:]
                    while got < n:
                        size = reader.next_size()
                        if got + size > n:
                            raise TransportError(f"{self.cfg.role(peer)} sent more bytes than its message header said")
                        reader.read_into(size, view[got : got + size])
                        got += size
                    message = view
                with self._cond:
                    box = self._box((peer, channel, tag))
                    box["arrived"][box["n_in"]] = message
                    box["n_in"] += 1
                    self._cond.notify_all()
        except Exception as err:  # noqa: BLE001 - recorded, raised to whoever waits on this peer
            reader.close()  # a link that failed authentication carries nothing more
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

    def failed_peers(self) -> list[int]:
        with self._cond:
            return sorted(self._failed)

    def close(self) -> None:
        self._closing = True
        for w in self._out.values():
            w.close()
        for r in self._in.values():
            r.close()
        for c in self.controls:
            with contextlib.suppress(OSError):
                c.close()


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
    outgoing: dict[int, FrameWriter] = {}
    incoming: dict[int, FrameReader] = {}
    hellos: dict[int, dict] = {}
    errors: list[BaseException] = []
    try:
        if cfg.rank == 0:
            listener = listener or _bind(*cfg.rendezvous)
            while len(incoming) < cfg.world - 1:
                peer, sock = _accept(cfg, listener, deadline, set(incoming))
                sock.settimeout(_remaining(deadline, "reading a hello"))
                hello = sock.read_hello()
                if hello.get("world") != cfg.world:
                    raise TransportError(f"{cfg.role(peer)} expects {hello.get('world')} ranks, this session has {cfg.world}")
                incoming[peer], hellos[peer] = sock, hello
            session = secrets.token_hex(16)
            book = {str(p): h["listen"] for p, h in hellos.items()}
            for peer in range(1, cfg.world):
                h, port = hellos[peer]["listen"]
                outgoing[peer] = _connect(cfg, (h, port), peer, deadline)
                outgoing[peer].send_hello({"rank": 0, "session": session, "book": book})
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
                    hellos[peer] = sock.read_hello()
                    incoming[peer] = sock
            except BaseException as err:  # noqa: BLE001 - handed to the main thread
                errors.append(err)

        acceptor = threading.Thread(target=accept_all, daemon=True, name="smt-accept")
        acceptor.start()
        outgoing[0] = _connect(cfg, cfg.rendezvous, 0, deadline)
        outgoing[0].send_hello({"rank": cfg.rank, "world": cfg.world, "listen": listen})
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
                outgoing[peer].send_hello({"rank": cfg.rank, "session": session})
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
        for link in list(outgoing.values()) + list(incoming.values()):
            link.close()
        raise

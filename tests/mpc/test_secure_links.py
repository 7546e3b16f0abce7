"""The links between parties, attacked as an outsider would (mpc/transport.py, mpc/tls_backend.py).

* a passive observer captures a whole session (tcpdump on the loopback of a private network
  namespace holding every party): after each link's 12-byte preamble, the capture is TLS 1.3
  records (handshakes, then encrypted) followed by AES-256-GCM frames under the key sent inside
  TLS, nothing else, and no 24-byte window of anything the computing parties received (their
  wiretaps, SMT_WIRETAP: shares, every opened value, the dealer's answers) appears in it;
* impostors: a model owner with an unpinned self-signed certificate, one holding the dealer's
  identity, and a client with no certificate at all are refused with an error naming the role
  and the fingerprint expected, and the honest parties stop within the timeout;
* a relay in the middle with its own certificate is refused by both sides it talks to.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mpc import errors, identity, links, transport
from mpc.api import run_inference
from mpc.launcher import free_port, launch

ROOT = Path(__file__).resolve().parents[2]


def _party_pids() -> set[int]:
    pids = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if b"mpc.party" in (p / "cmdline").read_bytes():
                    pids.add(int(p.name))
            except OSError:
                pass
    return pids


# ------------------------------------------------------------------------------------------
# passive observer


def _tcp_streams(pcap: bytes) -> dict[tuple, bytes]:
    """TCP payload per direction from a pcap file (Ethernet / IPv4), reassembled by sequence number."""
    magic = struct.unpack("<I", pcap[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", pcap[20:24])[0]
    assert linktype == 1, f"expected Ethernet link type, got {linktype}"
    segs: dict[tuple, dict[int, bytes]] = {}
    off = 24
    while off + 16 <= len(pcap):
        _, _, incl, _ = struct.unpack(endian + "IIII", pcap[off : off + 16])
        pkt = pcap[off + 16 : off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 34 or pkt[12:14] != b"\x08\x00":
            continue
        ihl = (pkt[14] & 0x0F) * 4
        total = struct.unpack("!H", pkt[16:18])[0]
        if pkt[23] != 6:
            continue
        ip = pkt[14 : 14 + total]
        tcp = ip[ihl:]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        payload = tcp[doff:]
        if payload:
            key = (ip[12:16], sport, ip[16:20], dport)
            segs.setdefault(key, {})[seq] = payload
    streams = {}
    for key, by_seq in segs.items():
        out, expect = bytearray(), None
        for seq in sorted(by_seq):
            data = by_seq[seq]
            if expect is not None and seq != expect:
                raise AssertionError(f"gap in captured stream {key}: the capture dropped packets")
            out += data
            expect = (seq + len(data)) & 0xFFFFFFFF
        streams[key] = bytes(out)
    return streams


def _parse_link(stream: bytes) -> tuple[list[int], list[int]]:
    """(TLS record types, AEAD frame sizes) of one direction of a link; fails on anything else.

    The connecting side's direction: our 12-byte preamble, TLS 1.3 records (handshake, the link
    key inside an application-data record), then AES-256-GCM frames (4-byte length,
    ciphertext); the accepting side's: TLS records only (handshake, acknowledgement)."""
    off, types, frames = (12 if stream[:8] == transport.PREAMBLE else 0), [], []
    while off < len(stream) and stream[off] in (0x14, 0x15, 0x16, 0x17):
        assert off + 5 <= len(stream), "truncated TLS record header"
        ctype, version, length = struct.unpack("!BHH", stream[off : off + 5])
        assert version in (0x0301, 0x0303) and length <= 16384 + 256, f"not a TLS record at {off}"
        types.append(ctype)
        off += 5 + length
    while off < len(stream):
        (n,) = struct.unpack("!I", stream[off : off + 4])
        assert 16 <= n <= (4 << 20) + 16, f"not an AEAD frame at {off}"
        frames.append(n)
        off += 4 + n
    assert off == len(stream)
    return types, frames


needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpdump"),
    reason="needs root, iproute2 and tcpdump (.ci/run installs tcpdump)",
)


@needs_netns
def test_a_captured_session_is_tls_only_and_holds_no_exchanged_value(tmp_path, tiny_classifier_dir):
    ns = f"smt-cap-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        pcap = tmp_path / "session.pcap"
        dump = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", "lo", "-U", "-B", "65536", "-s", "0",
                                 "-w", str(pcap), "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(1.0)
        taps = {role: tmp_path / f"{role}.bin" for role in ("data-owner", "model-owner")}  # the openings' receivers
        texts = ["the parcel arrived damaged", "please reset my password"]
        prefix = ["ip", "netns", "exec", ns]
        res = run_inference(texts, model=tiny_classifier_dir, max_length=16, timeout=180,
                            env_by_role={r: {"SMT_WIRETAP": str(p), "SMT_TEST_HOOKS": "1"} for r, p in taps.items()},
                            launch_options={"prefix_by_role": dict.fromkeys(("data-owner", "model-owner", "dealer"), prefix)})  # fmt: skip
        time.sleep(1.0)
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=30)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert res.outputs.shape == (2, 3)
    streams = _tcp_streams(pcap.read_bytes())
    # one connection per ordered pair of 3 ranks, each seen in both directions
    assert len(streams) == 12, f"expected 6 links x 2 directions, got {len(streams)}"
    assert sum(s[:8] == transport.PREAMBLE for s in streams.values()) == 6
    captured = b"".join(streams.values())
    tapped = {role: p.read_bytes() for role, p in taps.items()}
    # positive controls: the capture saw every byte the parties exchanged (plus TLS overhead)
    assert len(captured) > sum(len(t) for t in tapped.values())
    framed = 0
    for stream in streams.values():
        types, frames = _parse_link(stream)
        first_app = types.index(0x17)  # TLS 1.3: everything after the hellos is encrypted
        assert set(types[:first_app]) <= {0x14, 0x16} and set(types[first_app:]) == {0x17}
        assert (stream[:8] == transport.PREAMBLE) == bool(frames)  # data flows only from the connecting side
        framed += sum(frames)
    assert framed > sum(len(t) for t in tapped.values())  # every exchanged byte went inside a frame
    rng = np.random.default_rng(0)
    checked = 0
    for role, data in tapped.items():
        for start in rng.integers(0, len(data) - 24, size=400):
            window = data[start : start + 24]
            if len(set(window)) < 12:  # skip runs of zeros and other low-entropy windows
                continue
            checked += 1
            assert window not in captured, f"bytes received by {role} appear in the capture"
    assert checked > 400
    for text in texts:
        assert text.encode() not in captured


# ------------------------------------------------------------------------------------------
# impostors, through the launcher: every party a real process


def _impostor_session(tiny_classifier_dir, model_owner: identity.Identity):
    before = _party_pids()
    t0 = time.monotonic()
    with pytest.raises(errors.IdentityError) as info:
        run_inference(["x"], model=tiny_classifier_dir, max_length=8, timeout=90,
                      launch_options={"identities": {"model-owner": model_owner}})  # fmt: skip
    assert time.monotonic() - t0 < 60
    assert not (_party_pids() - before)  # every party stopped
    return str(info.value)


def test_a_model_owner_with_an_unpinned_self_signed_certificate_is_refused(tiny_classifier_dir):
    key, cert = identity.generate("model-owner")
    impostor = identity.Identity(role="model-owner", key_pem=key, cert_pem=cert, peers={})
    # it pins the real peers (it may know their public certificates); only its own key is wrong
    real = identity.throwaway(identity.session_roles(2))
    impostor = identity.Identity(role="model-owner", key_pem=key, cert_pem=cert,
                                 peers={**real["data-owner"].peers, "model-owner": cert})  # fmt: skip
    message = _impostor_session(tiny_classifier_dir, impostor)
    assert "model-owner" in message and "sha256:" in message and "refused" in message


def test_a_party_holding_another_roles_identity_is_refused():
    """The dealer's own key and certificate, presented for the model owner's role."""
    ids = identity.throwaway(identity.session_roles(2))
    dealer = ids["dealer"]
    as_model_owner = identity.Identity(role="model-owner", key_pem=dealer.key_pem, cert_pem=dealer.cert_pem, peers=dealer.peers)
    port = free_port()
    out: dict = {}

    def run(rank, ident):
        cfg = transport.MeshConfig(rank=rank, parties=2, rendezvous=("127.0.0.1", port), identity=ident, timeout=15)
        try:
            out[rank] = transport.connect_mesh(cfg)
        except errors.SmtError as err:
            out[rank] = err

    threads = [threading.Thread(target=run, args=a) for a in ((0, ids["data-owner"]), (1, as_model_owner), (2, ids["dealer"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert isinstance(out[0], errors.IdentityError)
    expected = ids["data-owner"].peer_fingerprint("model-owner")
    assert "model-owner" in str(out[0]) and expected in str(out[0])
    assert isinstance(out[2], errors.TransportError)  # the honest dealer stops too


def test_a_client_without_a_certificate_is_refused():
    ids = identity.throwaway(identity.session_roles(2))
    port = free_port()
    out: dict = {}

    def data_owner():
        cfg = transport.MeshConfig(rank=0, parties=2, rendezvous=("127.0.0.1", port), identity=ids["data-owner"], timeout=15)
        try:
            out[0] = transport.connect_mesh(cfg)
        except errors.SmtError as err:
            out[0] = err

    t = threading.Thread(target=data_owner)
    t.start()
    time.sleep(0.3)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(transport.PREAMBLE + struct.pack("!I", 1))
    with pytest.raises((ssl.SSLError, OSError)):
        tls = ctx.wrap_socket(raw)
        tls.sendall(b"x" * 64)
        assert tls.recv(1) == b""  # the server closes: TLS 1.3 reports the refusal on first read
        raise OSError("closed")
    t.join(timeout=30)
    assert isinstance(out[0], errors.IdentityError)
    assert "model-owner" in str(out[0]) and ids["data-owner"].peer_fingerprint("model-owner") in str(out[0])


def test_a_relay_in_the_middle_with_its_own_certificate_is_refused():
    ids = identity.throwaway(identity.session_roles(2))
    relay_key, relay_cert = identity.generate("data-owner")
    real_port, relay_port = free_port(), free_port()
    relay = socket.socket()
    relay.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    relay.bind(("127.0.0.1", relay_port))
    relay.listen(8)
    relay_id = identity.Identity(role="data-owner", key_pem=relay_key, cert_pem=relay_cert,
                                 peers={"model-owner": relay_cert, "dealer": relay_cert})  # fmt: skip
    server_ctx = links.tls_context(relay_id, "model-owner", server=True)
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    seen = []

    def run_relay():  # terminates TLS with its own certificate, would forward to the real data owner
        relay.settimeout(20)
        try:
            while True:
                conn, _ = relay.accept()
                conn.recv(12)
                try:
                    server_ctx.wrap_socket(conn, server_side=True)
                    seen.append("handshake completed")
                except (ssl.SSLError, OSError) as err:
                    seen.append(f"refused: {err}")
        except OSError:
            return

    threading.Thread(target=run_relay, daemon=True).start()
    out: dict = {}

    def run(rank, rdv):
        cfg = transport.MeshConfig(rank=rank, parties=2, rendezvous=("127.0.0.1", rdv), identity=ids[identity.role_of_rank(rank, 2)], timeout=8)
        try:
            out[rank] = transport.connect_mesh(cfg)
        except errors.SmtError as err:
            out[rank] = err

    threads = [threading.Thread(target=run, args=(0, real_port)), threading.Thread(target=run, args=(1, relay_port)),
               threading.Thread(target=run, args=(2, relay_port))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    relay.close()
    expected = ids["model-owner"].peer_fingerprint("data-owner")
    for rank in (1, 2):
        assert isinstance(out[rank], errors.IdentityError), out[rank]
        assert "data-owner" in str(out[rank]) and expected in str(out[rank])
    assert isinstance(out[0], errors.TransportError)  # nobody reached the real data owner: it timed out
    assert not any(s == "handshake completed" for s in seen)


def test_the_rendezvous_listens_only_on_the_address_it_was_given(tiny_classifier_dir, tmp_path):
    """While a session waits for its peers, its port answers on 127.0.0.1 and not on other addresses."""
    ids = identity.throwaway(identity.session_roles(2))
    port = free_port()
    cfg = transport.MeshConfig(rank=0, parties=2, rendezvous=("127.0.0.1", port), identity=ids["data-owner"], timeout=3)
    t = threading.Thread(target=lambda: pytest.raises(errors.TransportError, transport.connect_mesh, cfg), daemon=True)
    t.start()
    time.sleep(0.5)
    listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:] if line.split()[3] == "0A"]
    ours = [a for a in listening if int(a.split(":")[1], 16) == port]
    assert ours == ["0100007F:" + f"{port:04X}"]  # 127.0.0.1 only, never 0.0.0.0
    t.join(timeout=10)


def test_plaintext_transports_cannot_be_selected(monkeypatch):
    from mpc import tls_backend

    monkeypatch.setenv("DISTRIBUTED_BACKEND", "gloo")
    monkeypatch.setenv("RENDEZVOUS", "tcp://127.0.0.1:1234")
    with pytest.raises(errors.TransportError, match="refusing transport 'gloo'"):
        tls_backend.check_secure_environment()


def test_launch_with_a_wrong_identity_for_the_dealer_names_the_dealer(tiny_classifier_dir):
    key, cert = identity.generate("dealer")
    real = identity.throwaway(identity.session_roles(2))
    fake = identity.Identity(role="dealer", key_pem=key, cert_pem=cert, peers={**real["dealer"].peers, "dealer": cert})
    with pytest.raises(errors.IdentityError) as info:
        launch("mpc.probe_jobs:sleep_job", {"data-owner": {"seconds": 1}}, timeout=90, identities={"dealer": fake})
    assert "dealer" in str(info.value)


def test_a_byte_altered_on_the_wire_ends_the_link():
    """An active attacker on the path (a TCP relay that forwards the TLS handshake untouched, then
    flips one bit deep inside the data) is detected: the frame fails authentication."""
    ids = identity.throwaway(["data-owner", "model-owner"])
    real_port, relay_port = free_port(), free_port()
    relay = socket.create_server(("127.0.0.1", relay_port))

    def pipe(src, dst, flip_at=None):
        seen = 0
        try:
            while data := src.recv(65536):
                if flip_at is not None and seen <= flip_at < seen + len(data):
                    data = bytearray(data)
                    data[flip_at - seen] ^= 0x01
                seen += len(data)
                dst.sendall(data)
        except OSError:
            pass

    def run_relay():
        conn, _ = relay.accept()
        upstream = socket.create_connection(("127.0.0.1", real_port))
        threading.Thread(target=pipe, args=(conn, upstream, 150_000), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()

    threading.Thread(target=run_relay, daemon=True).start()
    out: dict = {}

    def run(rank, rdv):
        cfg = transport.MeshConfig(rank=rank, parties=1, rendezvous=("127.0.0.1", rdv),
                                   identity=ids[identity.role_of_rank(rank, 1)], timeout=15)  # fmt: skip
        out[rank] = transport.connect_mesh(cfg)

    t0 = threading.Thread(target=run, args=(0, real_port))
    t0.start()
    time.sleep(0.2)
    run(1, relay_port)
    t0.join(timeout=20)
    payload = np.arange(40_000, dtype=np.int64).tobytes()  # 320 kB: the flipped byte is inside it
    out[1].send(0, 7, 0, payload)
    with pytest.raises(errors.TransportError, match="failed authentication"):
        out[0].recv(1, 7, 0, timeout=20)
    for m in out.values():
        m.close()
    relay.close()


def test_one_certificate_configured_for_two_roles_is_refused():
    """Otherwise one key holder could claim both ranks."""
    from argparse import Namespace

    from mpc import party

    ids = identity.throwaway(identity.session_roles(2))
    own = ids["data-owner"]
    peers = {**own.peers, "dealer": ids["model-owner"].cert_pem}
    params = {"identity": identity.Identity(role="data-owner", key_pem=own.key_pem, cert_pem=own.cert_pem, peers=peers).to_params()}
    with pytest.raises(errors.ConfigurationError, match="same certificate"):
        party._identity(Namespace(rank=0, world_size=2, identity_dir=None), params)

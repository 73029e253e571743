"""The metrics of the CVS real-time 速報 link (gateway.protocols.cvs), each label created at
import so that a series is there before its first increment."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

RESULTS: Final = ("00", "10", "90")
FRAME_TYPES: Final = ("dt", "hb", "ha", "ak_sent", "unknown", "bad")
DISCONNECT_REASONS: Final = ("idle", "frame_too_long", "peer_closed", "bad_frame")
REFUSAL_REASONS: Final = (
    "peer_name",
    "too_many_connections",
    "too_many_handshakes",
    "handshake_timeout",
    "handshake_failed",
)

FRAMES = Counter(
    "gateway_cvs_link_frames_total",
    "Frames on the CVS real-time link: dt, hb, ha, unknown and bad received; ak_sent sent.",
    ["type"],
)
ACKS = Counter(
    "gateway_cvs_link_acks_total", "AK frames sent to the CVS agency, by result.", ["result"]
)
ACK_SECONDS = Histogram(
    "gateway_cvs_link_ack_duration_seconds",
    "Time from a DT record's arrival to its AK (the record stored, or refused), on the CVS link.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONNECTIONS = Gauge(
    "gateway_cvs_link_connections",
    "Established connections from the CVS agency (handshake complete, peer name allowed).",
)
REFUSED = Counter(
    "gateway_cvs_link_refused_total",
    "CVS link connections refused before a frame was read, by reason (peer_name, "
    "too_many_connections, too_many_handshakes, handshake_timeout, handshake_failed).",
    ["reason"],
)
PAUSES = Counter(
    "gateway_cvs_link_pauses_total",
    "Times a CVS link connection stopped reading because max_unacked records were in flight.",
)
DISCONNECTS = Counter(
    "gateway_cvs_link_disconnects_total",
    "CVS link connections closed, by reason (idle, frame_too_long, bad_frame; peer_closed).",
    ["reason"],
)
for _type in FRAME_TYPES:
    FRAMES.labels(_type)
for _result in RESULTS:
    ACKS.labels(_result)
for _reason in DISCONNECT_REASONS:
    DISCONNECTS.labels(_reason)
for _reason in REFUSAL_REASONS:
    REFUSED.labels(_reason)

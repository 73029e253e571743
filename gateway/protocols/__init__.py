"""Protocols: bytes on a transport (framing, sessions, acks, HTTP resources). Never the store."""

"""Mappers: pure bytes ⇄ canonical-model functions; no I/O, no clock, no Twisted."""

"""Webhooks: the endpoints API, delivery, signatures, and which addresses may be reached."""

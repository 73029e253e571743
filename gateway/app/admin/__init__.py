"""``gateway-admin``: the operator's commands (commands.py is the entry point)."""

"""Money use cases: fee plans, settlement runs, statements."""

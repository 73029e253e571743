"""Simulators of the payment networks' peers, for the demo and the tests."""

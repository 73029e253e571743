"""The merchant API (spec/merchant-api.md) on twisted.web."""

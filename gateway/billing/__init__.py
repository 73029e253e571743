"""Billing use cases: bills, bulk registration, mandates, payments, pages, keys, jobs."""

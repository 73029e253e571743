"""Rendering: the payment page, the barcode SVG, PDF receipts and statements."""

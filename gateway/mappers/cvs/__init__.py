"""Convenience-store collection (コンビニ収納) formats of spec/cvs.md: barcode, records, files."""

"""Bank account transfer (預金口座振替) files of spec/zengin.md: 120-byte records, 種別 91."""

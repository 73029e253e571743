"""Pay-easy over the multi-payment network (MPN) link messages of spec/mpn.md §3-§5."""

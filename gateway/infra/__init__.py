"""Infrastructure the layers share: TLS files, safe file writes, sealed secrets, periodic jobs."""

"""The console (docs/console.md): the screens of billers' and the center's staff, served as
HTML by the API listener under ``{public_url}/console/``."""

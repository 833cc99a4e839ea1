"""The checks of one file, one module per group (container, identity, healthimaging, pixels, deid)."""

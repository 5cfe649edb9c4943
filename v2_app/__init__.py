"""V2: the order, product and AI services in the migration guide's V2 style (see `v2_app.app.create_app`)."""

__version__ = "2.0.0"

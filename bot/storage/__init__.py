"""Storage: SQLAlchemy 2.0 models, the engine, migrations and one query module per aggregate."""

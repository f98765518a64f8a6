"""Storage: SQLAlchemy models, the database connection, migrations, repositories.

SQLite (WAL) is the embedded default; PostgreSQL (psycopg 3) is selected by a
``postgresql+psycopg://`` URL. Both are driven by the same code.
"""

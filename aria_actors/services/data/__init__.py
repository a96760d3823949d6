"""aria_data: the databases every service uses (PostgreSQL, or SQLite by default),
their migrations, health, backups and tenant isolation."""

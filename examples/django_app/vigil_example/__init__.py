"""A minimal Django project audited by Vigil (one settings module, no database)."""

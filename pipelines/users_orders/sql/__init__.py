"""SQL models of the users-orders pipeline; a package so the .sql files install with the code."""

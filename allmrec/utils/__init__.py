"""Small shared helpers: atomic writes, seeding, logging, timing."""

"""The `remediate` command line. Each command lives in its own module, loaded lazily."""

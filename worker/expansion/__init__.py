"""Pure functions and data types of an expansion: no I/O happens here."""

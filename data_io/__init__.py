"""data_io package."""

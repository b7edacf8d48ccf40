"""The run's configuration: typed groups, validation, the data and model contracts."""

"""Tools a developer or a factory runs on the host: images, partition tables, demo."""

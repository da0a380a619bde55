"""jumpstart: the ESP-Jumpstart smart outlet as a whole system in Python."""

from jumpstart.errors import InputError, JumpstartError, UsageError

__version__ = "0.1.0"

__all__ = ["InputError", "JumpstartError", "UsageError", "__version__"]

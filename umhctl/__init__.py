"""umhctl: declarative provisioning for United Manufacturing Hub edge sites."""

__version__ = "0.1.0"

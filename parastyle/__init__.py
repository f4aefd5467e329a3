"""parastyle: learning and using representations of how something is said."""

__version__ = "0.1.0"

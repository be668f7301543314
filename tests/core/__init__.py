"""The core's tests: they need nothing but pytest and hypothesis."""

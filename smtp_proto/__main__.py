"""``python -m smtp_proto``: the ``smtp-proto`` command (``smtp_proto.transports.cli``)."""

import importlib
import sys

# Imported by name: the command lives with the I/O code in smtp_proto.transports, which the
# I/O-free core never imports statically.
sys.exit(importlib.import_module("smtp_proto.transports.cli").main())

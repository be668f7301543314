"""Make ``import smtplib`` give ``smtp_proto.transports.sync`` in this interpreter.

Python imports ``sitecustomize`` at start-up from the first ``sys.path`` entry that has it, so
run.py puts this directory on ``PYTHONPATH`` for the "replaced" runs only. The replacement is
in ``sys.modules`` before any consumer code is imported, so both ``import smtplib`` and
``from smtplib import SMTP`` see the adapter. (An error here is only printed by ``site``, not
raised: run.py checks separately that the replacement took.)
"""

import sys

import smtp_proto.transports.sync

sys.modules["smtplib"] = smtp_proto.transports.sync

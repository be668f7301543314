"""Adapters that drive the sans-I/O core over real I/O, each with the ``smtplib`` API.

``smtp_proto.transports.sync`` is the blocking-socket drop-in for ``smtplib``.
"""

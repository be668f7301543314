"""The well-known ports: what every default port of the library and the command comes from."""

from __future__ import annotations

__all__ = ["LMTP_PORT", "SMTPS_PORT", "SMTP_PORT", "SUBMISSION_PORT"]

#: SMTP between servers (RFC 5321), ``smtplib.SMTP_PORT``.
SMTP_PORT = 25
#: Message submission with STARTTLS (RFC 6409).
SUBMISSION_PORT = 587
#: Submission over implicit TLS (RFC 8314), ``smtplib.SMTP_SSL_PORT``.
SMTPS_PORT = 465
#: LMTP over TCP as ``smtplib.LMTP_PORT`` has it (RFC 2033 names no port; IANA's is 24, which
#: Dovecot uses: pass it explicitly there).
LMTP_PORT = 2003

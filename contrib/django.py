"""A Django email backend that sends through the blocking ``Mailer``, pipelined.

``EMAIL_BACKEND = "smtp_proto.contrib.django.EmailBackend"`` with Django's SMTP settings:
``EMAIL_HOST``, ``EMAIL_PORT``, ``EMAIL_HOST_USER``, ``EMAIL_HOST_PASSWORD``,
``EMAIL_USE_TLS`` (STARTTLS, required), ``EMAIL_USE_SSL`` (implicit TLS), ``EMAIL_TIMEOUT``,
``EMAIL_SSL_CERTFILE`` and ``EMAIL_SSL_KEYFILE`` (a client certificate).  Where it differs
from Django's SMTP backend: certificates and host names are verified; credentials are never
sent without TLS (each message fails with ``SMTPSecurityError``); ``send_messages`` sends every
message before it raises the first failure.  Importing this module imports Django.
"""

from __future__ import annotations

import email.policy
import functools
import inspect
import ssl
import threading
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from smtp_proto.transports.sync import Mailer

from smtp_proto.batch import Outgoing

__all__ = ["EmailBackend"]


class EmailBackend(BaseEmailBackend):
    """Django's ``EmailBackend`` API over one ``Mailer``: ``open()`` starts it, ``close()``
    waits for it and QUITs, ``send_messages`` pipelines its messages on that connection.
    The arguments override the settings of the same meaning, as for Django's SMTP backend."""

    def __init__(  # noqa: PLR0917 (the signature of Django's SMTP backend)
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Set here, not by BaseEmailBackend: Django 6.1 deprecates it there.
        super().__init__(**kwargs)
        self.fail_silently = fail_silently
        self.host: str = settings.EMAIL_HOST if host is None else host
        self.port: int = settings.EMAIL_PORT if port is None else port
        self.username: str = settings.EMAIL_HOST_USER if username is None else username
        self.password: str = settings.EMAIL_HOST_PASSWORD if password is None else password
        self.use_tls: bool = settings.EMAIL_USE_TLS if use_tls is None else use_tls
        self.use_ssl: bool = settings.EMAIL_USE_SSL if use_ssl is None else use_ssl
        self.timeout: float | None = settings.EMAIL_TIMEOUT if timeout is None else timeout
        self.ssl_keyfile: str | None = (
            settings.EMAIL_SSL_KEYFILE if ssl_keyfile is None else ssl_keyfile
        )
        self.ssl_certfile: str | None = (
            settings.EMAIL_SSL_CERTFILE if ssl_certfile is None else ssl_certfile
        )
        if self.use_tls and self.use_ssl:
            raise ValueError(
                "EMAIL_USE_TLS (STARTTLS) and EMAIL_USE_SSL (implicit TLS) exclude each other: "
                "set one of them to True, not both"
            )
        self.mailer: Mailer | None = None
        self._lock = threading.RLock()

    def _options(self) -> dict[str, Any]:
        """The ``Mailer``'s options from the backend's settings."""
        options: dict[str, Any] = {
            "tls": "starttls" if self.use_tls else "implicit" if self.use_ssl else "none"
        }
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.ssl_certfile or self.ssl_keyfile:
            context = ssl.create_default_context()
            context.load_cert_chain(self.ssl_certfile or "", self.ssl_keyfile)
            options["context"] = context
        if self.username:
            options["username"] = self.username
            options["password"] = self.password
        return options

    def open(self) -> bool:
        """Start the ``Mailer`` (it connects when the first message comes); ``True`` if this
        call started it, ``False`` if it was running, or if starting failed silently."""
        if self.mailer is not None:
            return False
        try:
            mailer = Mailer(self.host, self.port, **self._options())
        except OSError:  # a certificate or key file that cannot be read
            if not self.fail_silently:
                raise
            return False
        self.mailer = mailer.__enter__()
        return True

    def close(self) -> None:
        """Wait for every message given, then QUIT the connection."""
        mailer, self.mailer = self.mailer, None
        if mailer is not None:
            mailer.close()

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send the messages, pipelined on one connection; how many were sent (a message
        with no recipients is skipped).  Unless ``fail_silently``, the first message's failure
        is raised once every message has been sent or has failed."""
        if not email_messages:
            return 0
        with self._lock:
            opened = self.open()
            if self.mailer is None:
                return 0
            try:
                outcomes = self.mailer.send_many(
                    _outgoing(message) for message in email_messages if message.recipients()
                )
            finally:
                if opened:
                    self.close()
        failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if failures and not self.fail_silently:
            raise failures[0]
        return len(outcomes) - len(failures)


def _outgoing(message: Any) -> Outgoing:
    """A Django ``EmailMessage`` as the ``Mailer`` takes it: its bytes with CRLF line ends, and
    its envelope (the addresses of ``from_email`` and ``recipients()``, without their names)."""
    return Outgoing(
        _message_bytes(message),
        sender=parseaddr(message.from_email)[1],
        recipients=[parseaddr(recipient)[1] for recipient in message.recipients()],
    )


def _message_bytes(message: Any) -> bytes:
    """A Django ``EmailMessage``'s bytes with CRLF line ends, made as Django's SMTP backend
    makes them: Django 6's ``message()`` builds an ``email.message.EmailMessage`` under the
    policy it is given (``SMTP``: CRLF), an older one a MIME object whose ``as_bytes`` takes
    the line end."""
    if _takes_policy(type(message).message):
        return bytes(message.message(policy=email.policy.SMTP).as_bytes())
    return bytes(message.message().as_bytes(linesep="\r\n"))


@functools.cache
def _takes_policy(method: Any) -> bool:
    """Whether an ``EmailMessage`` class's ``message()`` takes a ``policy`` (Django 6): asked
    once per class, not for every message of a mass mailing."""
    return "policy" in inspect.signature(method).parameters

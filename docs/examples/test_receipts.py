"""Tests of an application's mail code that run without a network: ``pytest test_receipts.py``.

The application's function takes an ``smtplib.SMTP``-like object; the tests give it an
``InMemorySMTP`` (``in_memory.py``, beside this file) and check what the server received.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from in_memory import InMemorySMTP, ScriptedServer

from smtp_proto import SMTPAuthenticationError, SMTPSenderRefused

# ---------------------------------------------------------------- the application's code


def send_receipt(smtp: Any, customer: str, order: int) -> bool:
    """Mail the receipt of ``order`` over ``smtp`` (an ``smtplib.SMTP``, connected); a copy
    goes to the accounts department.  False when the server refused the customer."""
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = customer
    message["Bcc"] = "accounts@example.com"
    message["Subject"] = f"Your order {order}"
    message.set_content(f"Thank you for order {order}.\n.\nThe shop\n")
    smtp.starttls()
    smtp.login("shop", "secret")
    refused = smtp.send_message(message)
    return customer not in refused


# In production:  with smtplib.SMTP("mail.example.com", 587) as smtp:
#                     send_receipt(smtp, customer, order)

# ---------------------------------------------------------------- its tests

SHOP = {"shop": "secret"}


def test_the_receipt_goes_to_the_customer_and_to_accounts() -> None:
    server = ScriptedServer(users=SHOP)
    with InMemorySMTP(server) as smtp:
        assert send_receipt(smtp, "ann@example.com", 42)
    (delivery,) = server.messages
    assert delivery.sender == "shop@example.com"
    assert delivery.recipients == ["ann@example.com", "accounts@example.com"]
    assert delivery.data.endswith(b"Thank you for order 42.\r\n.\r\nThe shop\r\n")
    assert b"Subject: Your order 42\r\n" in delivery.data
    assert b"accounts@example.com" not in delivery.data  # Bcc is never sent
    assert server.logins == ["shop"]
    verbs = [command.split()[0].upper() for command in server.commands]
    assert verbs.index("STARTTLS") < verbs.index("AUTH")  # the password only after TLS


def test_a_refused_customer_is_reported() -> None:
    server = ScriptedServer(users=SHOP, refuse={"gone@example.com": (550, "5.1.1 No such user")})
    with InMemorySMTP(server) as smtp:
        assert not send_receipt(smtp, "gone@example.com", 43)
    assert server.messages[0].recipients == ["accounts@example.com"]


def test_a_busy_server_raises_and_nothing_is_sent() -> None:
    server = ScriptedServer(users=SHOP, fail={"MAIL": (451, "4.3.0 Try again later")})
    with InMemorySMTP(server) as smtp, pytest.raises(SMTPSenderRefused) as refused:
        send_receipt(smtp, "ann@example.com", 44)
    assert refused.value.smtp_code == 451
    assert server.messages == []


def test_a_wrong_password_raises() -> None:
    server = ScriptedServer(users={"shop": "changed"})
    with InMemorySMTP(server) as smtp, pytest.raises(SMTPAuthenticationError):
        send_receipt(smtp, "ann@example.com", 45)
    assert server.logins == [] and server.messages == []

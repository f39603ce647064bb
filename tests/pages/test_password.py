"""Password change and reset through Django's own views with our templates: the reset email's link
sets a new password once; a used link says so."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_reset_by_email_then_change(make_user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    user = make_user()
    client = Client()
    assert client.get("/login/").content.count(b"Forgot your password?") == 1
    response = client.post("/account/reset/", {"email": user.email}, follow=True)
    assert b"Check your email" in response.content
    link = re.search(r"https?://[^\s]+/account/reset/[^\s]+/", mail.outbox[0].body).group(0)
    path = "/" + link.split("/", 3)[3]
    form = client.get(path, follow=True)
    assert b"Choose a new password" in form.content and b"new_password1" in form.content
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "An0ther-secret!", "new_password2": "An0ther-secret!"},
        follow=True,
    )
    assert b"Password set" in done.content
    assert Client().login(username=user.username, password="An0ther-secret!")
    again = client.get(path, follow=True)
    assert b"not valid any more" in again.content

    assert client.login(username=user.username, password="An0ther-secret!")
    page = client.get("/account/password/")
    assert page.status_code == 200 and b"Change your password" in page.content
    changed = client.post(
        "/account/password/",
        {
            "old_password": "An0ther-secret!",
            "new_password1": PASSWORD + "x9",
            "new_password2": PASSWORD + "x9",
        },
        follow=True,
    )
    assert b"Password changed" in changed.content

"""Fixtures for the GitHub-team sign-in tests: a fake GitHub per test."""

from __future__ import annotations

import pytest

from tests.fake_github import FakeGitHub


@pytest.fixture
def github():
    """A running fake GitHub with a small community; stopped after the test."""
    fake = FakeGitHub().start()
    fake.add_user("alice", email=None, emails=["alice@uni.example.org"])
    fake.add_user("bob")
    fake.add_user("carol")
    fake.add_user("dave")
    fake.add_team("pangeo-data", "climate", members=["alice"])
    fake.add_team("pangeo-data", "hub-admins", members=["dave"])
    fake.add_org_member("pangeo-forge", "bob")
    yield fake
    fake.stop()

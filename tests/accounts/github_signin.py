"""Signing in to the real hub with the fake GitHub, without a browser (requests)."""

from __future__ import annotations

import html
import re

import requests

from tests.fake_github import FakeGitHub
from tests.hubprocess import HubProcess

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def hub_config(github: FakeGitHub, refresh_age: int = 1) -> str:
    """The hub's override: github-teams against the fake, re-checking every ``refresh_age`` s."""
    return f"""
c.JupyterHub.authenticator_class = "github-teams"
c.GitHubTeamsAuthenticator.github_url = {github.url!r}
c.GitHubTeamsAuthenticator.client_id = {github.client_id!r}
c.GitHubTeamsAuthenticator.client_secret = {github.client_secret!r}
c.GitHubTeamsAuthenticator.admitted_teams = {{"pangeo-data:climate", "pangeo-data:oceans"}}
c.GitHubTeamsAuthenticator.admin_teams = {{"pangeo-data:hub-admins"}}
c.GitHubTeamsAuthenticator.github_timeout = 3
c.GitHubTeamsAuthenticator.auth_refresh_age = {refresh_age}
"""


def sign_in(hub: HubProcess, github: FakeGitHub, login: str) -> requests.Session:
    """A session signed in as ``login`` through "Sign in with GitHub" and Authorize."""
    github.signed_in = login
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/oauth_login", timeout=30)
    assert page.url.startswith(github.url), page.url
    fields = {name: html.unescape(value) for name, value in HIDDEN.findall(page.text)}
    done = session.post(page.url, data={**fields, "decision": "approve"}, timeout=30)
    assert done.ok and session.cookies.get("jupyterhub-session-id"), done.status_code
    return session


def token_for(hub: HubProcess, session: requests.Session, login: str) -> str:
    """A personal API token, made on the hub as the person would (token page / API)."""
    response = hub.api(session, "post", f"/users/{login}/tokens", json={"note": "laptop"})
    assert response.status_code == 201, response.text
    return response.json()["token"]

"""A policy's refusal as the HTTP error JupyterHub shows the person.

Spawners, the server API's rules (:mod:`pangeohub.servers`) and launches
(:mod:`pangeohub.binder`) all refuse through it, so a refusal reads the same wherever it
comes from.
"""

from __future__ import annotations

from tornado import web

from .policy import PolicyError


def refusal(error: PolicyError) -> web.HTTPError:
    """An HTTP error carrying the policy's message to the person, and nothing else."""
    http_error = web.HTTPError(error.status, "%s", error.message)
    http_error.jupyterhub_message = error.message
    return http_error

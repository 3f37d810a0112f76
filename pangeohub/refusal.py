"""A policy's refusal as the HTTP error JupyterHub shows the person.

Spawners, the server API's rules (:mod:`pangeohub.servers`) and launches
(:mod:`pangeohub.binder`) all refuse through it, so a refusal reads the same wherever it
comes from.
"""

from __future__ import annotations

import logging

from jupyterhub.utils import format_exception
from tornado import web
from traitlets.config import Config

from .policy import PolicyError

FORM_FAILURE = "Failed to spawn single-user server with form"


def refusal(error: PolicyError) -> web.HTTPError:
    """An HTTP error carrying the policy's message to the person, and nothing else."""
    http_error = web.HTTPError(error.status, "%s", error.message)
    http_error.jupyterhub_message = error.message
    return http_error


class RefusedFormsInOneLine(logging.Filter):
    """JupyterHub logs any failure of a spawn form's options as an error with its
    traceback; a refusal (a 4xx the person is shown) is the person's mistake, not the
    hub's: one warning line with its message instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.msg == FORM_FAILURE and isinstance(error, web.HTTPError):
            if 400 <= error.status_code < 500:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                record.msg = "Spawn form refused (%d): %s"
                record.args = (error.status_code, format_exception(error)[0])  # as the page says
                record.exc_info = record.exc_text = None
        return True


def wire_quiet_refusals(c: Config) -> None:
    """Refused spawn forms in one log line (part of :func:`pangeohub.configure`)."""
    log = logging.getLogger("JupyterHub")  # the hub application's logger
    if not any(isinstance(f, RefusedFormsInOneLine) for f in log.filters):
        log.addFilter(RefusedFormsInOneLine())

"""Make a hub database with JupyterHub 5 itself (run by that version's Python, not ours).

``python jupyterhub5_db.py <db_url> <out.json>``: JupyterHub's own application sets up the
database as a hub of the chart's image would (users, groups, roles, a service), then its
ORM adds what people leave in it (named servers with their options, tokens), and the
tokens and their owners are written to ``out.json``. Used by test_upgrade.py.
"""

import asyncio
import json
import sys

from jupyterhub import orm
from jupyterhub.app import JupyterHub


async def make(db_url: str) -> dict:
    app = JupyterHub(
        db_url=db_url,
        allow_named_servers=True,
        load_groups={
            "pangeo-data:climate": {"users": ["ada"]},
            "pangeo-data:oceans": {"users": ["hedy"]},
        },
        services=[{"name": "dask-gateway", "api_token": "gateway-" + "0" * 32}],
    )
    app.authenticator_class = "dummy"
    app.config.Authenticator.allowed_users = {"ada", "hedy"}
    app.config.Authenticator.admin_users = {"ada"}
    await app.initialize([])
    db = app.db
    ada = orm.User.find(db, "ada")
    hedy = orm.User.find(db, "hedy")
    for user, name, options in (
        (ada, "", {"profile": "large"}),
        (ada, "run1", {"profile": "small"}),
        (hedy, "", {"profile": "large"}),  # a profile her team may no longer use
        (hedy, "big_run", {"profile": "small"}),
    ):
        spawner = orm.Spawner(user=user, name=name, user_options=options)
        db.add(spawner)
    db.commit()
    tokens = {
        "ada": ada.new_api_token(note="notebook on my laptop", expires_in=None),
        "hedy": hedy.new_api_token(note="a script", expires_in=None),
    }
    return {"version": __import__("jupyterhub").__version__, "tokens": tokens}


if __name__ == "__main__":
    result = asyncio.run(make(sys.argv[1]))
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)

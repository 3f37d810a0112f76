"""The full ``pangeo`` environment in a person's server (``make check-environment``).

Opt-in (it builds the whole Pangeo stack, about 300 packages): the real hub with the
bundle's defaults (as root: the person's own account), the environment built by
``pangeohub-environments build`` as ``make run`` does, then in a person's kernel the Pangeo
Cloud guide's code: the stack imports; an ``xarray.Dataset`` written as zarr to
``$PANGEO_SCRATCH`` through fsspec, read back lazily, and a mean over it computed by
``GatewayCluster()`` workers running the same environment; and Dask's ``PipInstall`` worker
plugin as the docs show it.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time

import pytest

from tests.hubprocess import VENV_BIN, HubProcess

from .packages import make_wheel
from .test_servers import Person

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("PANGEOHUB_FULL_ENVIRONMENT") != "1",
        reason="builds the full Pangeo stack: run `make check-environment`",
    ),
]

STACK = [
    "xarray",
    "dask",
    "distributed",
    "dask_gateway",
    "dask_labextension",
    "zarr",
    "numcodecs",
    "netCDF4",
    "h5netcdf",
    "h5py",
    "scipy",
    "pandas",
    "fsspec",
    "s3fs",
    "gcsfs",
    "intake",
    "intake_xarray",
    "intake_esm",
    "cf_xarray",
    "pint_xarray",
    "matplotlib",
    "cartopy",
    "hvplot",
    "holoviews",
    "rioxarray",
    "rasterio",
    "xgcm",
    "ipywidgets",
    "geopandas",
    "flox",
    "kerchunk",
    "pystac_client",
    "metpy",
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = HubProcess(
        tmp_path_factory.mktemp("full-environment"), extra_config="c.Environments.enabled = True"
    )
    # The admin file the hub will load, for the build before it starts (as make run does).
    hub.workdir.mkdir(parents=True, exist_ok=True)
    admin_file = hub.workdir / "test_config.py"
    admin_file.write_text("c = get_config()  # noqa\nc.Environments.enabled = True\n")
    started = time.monotonic()
    built = subprocess.run(
        [str(VENV_BIN / "pangeohub-environments"), "-f", str(hub.config_file), "build"],
        env={
            **os.environ,
            "PANGEOHUB_STATE_DIR": str(hub.state_dir),
            "PANGEOHUB_CONFIG": str(admin_file),
        },
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    print(f"\nbuilt pangeo in {time.monotonic() - started:.0f} s: {built.stdout[-300:]}")
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def grace(hub):
    person = Person(hub, "grace")
    person.start(timeout=300)
    yield person
    person.close()


def test_the_stack_imports(grace):
    imported = grace.run(
        f"""
        import importlib, json
        versions = {{}}
        for name in {STACK!r}:
            module = importlib.import_module(name)
            versions[name] = getattr(module, "__version__", "?")
        print(json.dumps(versions))
        """,
        timeout=300,
    )
    assert set(imported) == set(STACK)


WORKFLOW = """
    import json, os, sys
    import fsspec, numpy as np, xarray as xr
    from dask_gateway import GatewayCluster

    scratch = os.environ["PANGEO_SCRATCH"]
    data = np.arange(200 * 100, dtype="float64").reshape(200, 100)
    ds = xr.Dataset({"t": (("time", "x"), data)}, coords={"time": np.arange(200)})
    ds.chunk({"time": 50}).to_zarr(fsspec.get_mapper(f"{scratch}/check/t.zarr"), mode="w")
    lazy = xr.open_zarr(fsspec.get_mapper(f"{scratch}/check/t.zarr"))
    is_lazy = lazy.t.chunks is not None

    cluster = GatewayCluster()
    cluster.scale(2)
    client = cluster.get_client()
    client.wait_for_workers(2, timeout=180)
    mean = float(lazy.t.mean().compute())
    prefixes = sorted(set(client.run(lambda: __import__("sys").prefix).values()))
    cluster.shutdown()
    print(json.dumps({"mean": mean, "expected": float(data.mean()), "lazy": is_lazy,
                      "workers": prefixes, "server": sys.prefix}))
"""


def test_an_xarray_zarr_dask_gateway_workflow(grace):
    out = grace.run(WORKFLOW, timeout=600)
    assert out["lazy"] and out["mean"] == out["expected"]
    assert out["workers"] == [out["server"]]  # the workers run the server's environment


def test_the_pip_install_worker_plugin_as_the_docs_show_it(grace, tmp_path):
    wheel = make_wheel(tmp_path, "pangeotest_plugin", "1.0", "P = 7\n")
    payload = base64.b64encode(wheel.read_bytes()).decode()
    out = grace.run(
        f"""
        import base64, json, os, pathlib
        from dask_gateway import GatewayCluster
        from distributed.diagnostics.plugin import PipInstall

        wheel = pathlib.Path(os.environ["HOME"]) / {wheel.name!r}
        wheel.write_bytes(base64.b64decode({payload!r}))
        cluster = GatewayCluster()
        cluster.scale(1)
        client = cluster.get_client()
        client.wait_for_workers(1, timeout=180)
        client.register_plugin(PipInstall(packages=[str(wheel)], pip_options=["--user"]))
        seen = client.run(lambda: __import__("pangeotest_plugin").P)
        cluster.shutdown()
        print(json.dumps(sorted(seen.values())))
        """,
        timeout=600,
    )
    assert out == [7]

# pangeohub: `make run` starts a hub on http://127.0.0.1:8000; `make test` runs the suite.
# Each does its own set-up: a virtualenv in .venv, configurable-http-proxy from npm in
# node_modules, and (for the browser tests) Debian's chromium, (for the database tests)
# Debian's PostgreSQL server and (for docs/operate) Debian's caddy and pebble.

# pangeohub needs Python 3.11 or newer. As root, servers run as people's own accounts:
# build the environment on a Python every account can run (a Python under /root is out of
# their reach). Where the system's is older (Ubuntu 22.04 ships 3.10), uv installs 3.12
# into PYTHON_HOME, readable by every account (docs/operate/platforms.md).
# `make PYTHON=/path/to/python3.x` chooses one.
SYSTEM_PYTHON ?= $(shell [ "$$(id -u)" = 0 ] && [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)
PYTHON_HOME ?= $(shell [ "$$(id -u)" = 0 ] && echo /opt/pangeohub/python || echo $$HOME/.local/share/pangeohub/python)
UV_PYTHON := $(PYTHON_HOME)/bin/python3
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell $(SYSTEM_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $(SYSTEM_PYTHON) || echo $(UV_PYTHON))
endif
VENV := .venv
BIN := $(VENV)/bin
PROXY := node_modules/.bin/configurable-http-proxy
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# As root, each person's servers and Dask processes run in their own space (bubblewrap).
ROOT_TOOLS := $(shell [ "$$(id -u)" = 0 ] && echo /usr/bin/bwrap)

.PHONY: setup run test lint format docs clean postgresql operate-tools bench-scale check-environment test-images test-image-builds test-upgrade

setup: $(VENV)/.installed $(PROXY) $(ROOT_TOOLS)

$(VENV)/.installed: setup.cfg pyproject.toml | $(filter $(UV_PYTHON),$(PYTHON))
	@$(PYTHON) -c "import ensurepip" 2>/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	@# jsonschema's optional IRI checker (rfc3987-syntax, pulled in by jupyter_events) builds
	@# a grammar at import: 1.5 s of CPU at every server start here. Nothing in a server
	@# validates IRIs, and jsonschema skips the check without it (jsonschema#1428).
	$(BIN)/python -m pip uninstall --quiet -y rfc3987-syntax
	$(BIN)/python -c "import pangeohub, jupyterhub, kubespawner, oauthenticator"
	touch $@

# A Python for set-up where the system's is too old: uv (from PyPI) installs one.
$(UV_PYTHON):
	@$(SYSTEM_PYTHON) -c "import ensurepip" 2>/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv >/dev/null; }
	$(SYSTEM_PYTHON) -m venv $(PYTHON_HOME)/uv
	$(PYTHON_HOME)/uv/bin/python -m pip install --quiet uv
	UV_PYTHON_INSTALL_DIR=$(PYTHON_HOME)/versions $(PYTHON_HOME)/uv/bin/uv python install 3.12
	mkdir -p $(PYTHON_HOME)/bin
	ln -sf "$$(UV_PYTHON_INSTALL_DIR=$(PYTHON_HOME)/versions $(PYTHON_HOME)/uv/bin/uv python find 3.12)" $@
	chmod -R a+rX $(PYTHON_HOME)

$(PROXY): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

/usr/bin/bwrap:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq bubblewrap >/dev/null

/usr/bin/chromium:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

# The tests start their own PostgreSQL server from Debian's binaries (any version).
postgresql:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

# The environments the profiles run in are built on the first run (with progress) and
# reused after (docs/environments.md).
run: setup
	$(BIN)/pangeohub-environments -f jupyterhub_config.py build
	$(BIN)/jupyterhub -f jupyterhub_config.py

# The chart-layout test runs a hub in a network namespace of its own (util-linux's unshare
# and nsenter, and ip to bring its loopback up).
/usr/sbin/ip:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq iproute2 >/dev/null

test: setup /usr/bin/chromium postgresql /usr/sbin/ip operate-tools
	$(BIN)/pytest

# The hub and gateway recipes' installs for real, in clean environments (a few minutes;
# the default suite resolves them and installs the user image's): tests/kubernetes/test_images.py.
test-images: setup
	PANGEOHUB_IMAGE_INSTALLS=1 $(BIN)/pytest tests/kubernetes/test_images.py

# The image recipes built for real with buildah, from stand-in bases made with debootstrap
# (the base images' registries are out of reach; about ten minutes the first time):
# tests/kubernetes/test_image_builds.py.
test-image-builds: setup
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq buildah debootstrap >/dev/null; }
	PANGEOHUB_IMAGE_BUILDS=1 $(BIN)/pytest tests/kubernetes/test_image_builds.py

# HTTPS (caddy), the tests' ACME server (pebble) and certificates (openssl), unit checks
# (systemd-analyze).
operate-tools:
	@command -v caddy >/dev/null && command -v pebble >/dev/null && \
		command -v openssl >/dev/null && command -v systemd-analyze >/dev/null || { \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install \
		-y -qq caddy pebble openssl systemd >/dev/null; }

# An upgrade from an earlier release, as root (about 40 s): a hub made by
# an older commit's code, `pangeohub-admin upgrade`, the new code's hub (docs/operate/upgrade.md).
test-upgrade: setup operate-tools
	$(BIN)/pytest -m opt_in tests/operate/test_upgrade.py

# The load test at scale (about 12 minutes): 100 then 1,000 people, pangeohub and plain
# KubeSpawner side by side.
bench-scale: setup
	$(BIN)/python benchmarks/bench_scale.py --together

# The full default environment (\`pangeo\`), built as \`make run\` builds it, in a person's
# server on a real hub: the stack imports, and an xarray/zarr/Dask Gateway workflow runs.
check-environment: setup
	PANGEOHUB_FULL_ENVIRONMENT=1 $(BIN)/pytest tests/environments/test_full_environment.py

lint: setup
	$(BIN)/ruff check pangeohub tests benchmarks jupyterhub_config.py jupyterhub_config.d deploy docs
	$(BIN)/ruff format --check pangeohub tests benchmarks jupyterhub_config.py jupyterhub_config.d deploy docs

format: setup
	$(BIN)/ruff format pangeohub tests benchmarks jupyterhub_config.py jupyterhub_config.d deploy docs

docs: setup
	$(BIN)/sphinx-build -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) node_modules docs/_build

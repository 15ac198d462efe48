# The two commands of the README:
#   make demo   set up (Python only) and run the main job on an embedded broker
#   make test   set up (Python + Debian test packages) and run ruff, mypy and pytest
.PHONY: demo test lint typecheck pytest bootstrap-run bootstrap-test lock asyncapi dashboards bench clean

VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

demo: bootstrap-run
	$(BIN)/pumptwin demo

test: bootstrap-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

bootstrap-run:
	scripts/bootstrap.sh run

bootstrap-test:
	scripts/bootstrap.sh test

# Re-resolve the locks from pyproject.toml (needs network; commit the result).
# requirements.lock: runtime + dev (the venv, CI). requirements-runtime.lock: runtime only, for the
# container image (Dockerfile), so test tools and browsers stay out of it. Both with hashes.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--no-header --output-file requirements.lock
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
		--no-header --output-file requirements-runtime.lock

asyncapi:
	$(BIN)/pumptwin contract asyncapi

# Write dashboards/json/*.json and dashboards/instructor/*.json from twin/grafana/dashboards/ (a module per dashboard; the JSON files are generated: edit the Python).
dashboards:
	$(BIN)/python -m twin.grafana

bench:
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tools/asyncapi/node_modules

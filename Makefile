# The two commands of the README:  `make demo` (main job)  and  `make test` (tests).
SHELL := /bin/bash
VENV := .venv
SERVING := .venv-serving
PYTEST_ARGS ?=

.PHONY: setup demo storefront test lint images unit clean

setup:  ## build the virtual environments and the offline checking tools (idempotent)
	bash scripts/setup.sh all
	bash scripts/tools.sh

demo: setup  ## the main job on the bundled MovieLens data
	bash scripts/demo.sh

storefront:  ## after `make demo`: the graph + `smartreco web` (storefront, experiments, model) until Ctrl-C
	bash scripts/demo.sh storefront

lint: setup
	$(VENV)/bin/ruff check .

images: setup  ## the project's images (smartreco images build; a no-op when up to date): a step of its own
	bash scripts/images.sh

test: setup lint images  ## everything CI runs: the images first, then the tests (scripts/test.sh)
	bash scripts/test.sh $(PYTEST_ARGS)

clean:
	rm -rf runs build .pytest_cache .ruff_cache

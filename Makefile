PYTHON_VENV := .venv/bin/python

.PHONY: setup demo test package bench readme clean

setup:
	@bash tools/setup.sh

demo: setup
	$(PYTHON_VENV) -m core.cli demo run -o out/demo

test: setup
	$(PYTHON_VENV) -m pytest

package: setup
	$(PYTHON_VENV) tools/package.py

bench: setup
	for b in bench/*.py; do $(PYTHON_VENV) $$b || exit 1; done

readme: setup
	$(PYTHON_VENV) tools/readme.py

clean:
	rm -rf out dist

.PHONY: demo test venv bench
demo:  ## install ebas (no test extras), back up a sample tree twice, restore and compare
	bash scripts/demo.sh
test:  ## install everything the suite needs, run ruff, import-linter and the whole suite (writes pytest_results.json)
	bash scripts/run-tests.sh
venv:  ## a development venv with the test extras
	bash scripts/setup-venv.sh test
bench:
	.venv/bin/python bench/bench_backup.py --scale 0.1 --days 5

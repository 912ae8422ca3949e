.PHONY: demo test venv bench
demo:  ## install, back up a sample tree twice, restore and compare
	bash scripts/demo.sh
test:  ## the whole test suite (writes pytest_results.json)
	bash scripts/run-tests.sh
venv:
	bash scripts/setup-venv.sh
bench:
	.venv/bin/python bench/bench_backup.py --scale 0.1 --days 5

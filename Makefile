# The README's two commands. Both set everything up first (Python 3.10+ and pip are all they need).
.PHONY: demo test bench
demo:
	scripts/setup_env.sh
	.venv/bin/sgdepth-ros demo
test:
	scripts/run_tests.sh
bench:
	scripts/setup_env.sh
	.venv/bin/sgdepth-ros bench

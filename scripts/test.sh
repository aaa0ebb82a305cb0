#!/usr/bin/env bash
# The test command: set up (scripts/setup.sh), then static checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff";         ruff check src tests bench
echo "== mypy --strict"; mypy
echo "== import layers"; lint-imports
echo "== pytest";        python3 -m pytest "$@"

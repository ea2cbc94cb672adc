#!/usr/bin/env bash
# The main job on the bundled data. Grows with each issue; today: describe and validate the data.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/smartreco data describe --source movielens

#!/usr/bin/env bash
# How docs/tensorboard.png was made: two runs side by side in TensorBoard's scalars view, the tutorial's
# regression without preconditioning (--seed 2 --precondition none, reporting every 5 epochs) and the
# digits classifier of examples/digits.py (--monitor val/acc --mode max, 20 epochs), TensorBoard on
# 127.0.0.1 over both, and Debian's chromium (apt-get install chromium) taking a headless screenshot.
# Run from the repository root after `make install-test` (examples/digits.py needs scikit-learn's data).
# Nothing but docs/tensorboard.png is written into the repository: the runs go to a temporary folder.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ under examples/ or linear_pl/
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server"; rm -rf "$work"' EXIT
.venv/bin/python scripts/train.py --seed 2 --precondition none --max_epochs 300 --log_every_n_epochs 5 \
  --default_root_dir "$work/tutorial" > /dev/null
.venv/bin/python scripts/train.py --model examples.digits.DigitsCNN --data examples.digits.Digits \
  --monitor val/acc --mode max --max_epochs 20 --log_every_n_epochs 1 --default_root_dir "$work/digits" > /dev/null
port=6200
.venv/bin/tensorboard --host 127.0.0.1 --port $port \
  --logdir_spec "tutorial:$work/tutorial/lightning_logs/version_0,digits:$work/digits/lightning_logs/version_0" \
  > /dev/null 2>&1 &
server=$!
# Wait until TensorBoard has loaded both runs (it reads the event files after it starts serving).
for _ in $(seq 60); do
  runs=$(curl -s "http://127.0.0.1:$port/data/runs" || true)
  [[ $runs == *tutorial* && $runs == *digits* ]] && break
  sleep 1
done
[[ $runs == *tutorial* && $runs == *digits* ]] || { echo "TensorBoard did not load both runs" >&2; exit 1; }
sleep 3
# A 1167x750 window at 1.2x: a 1400x900 PNG with legible text that ends below the four cards.
filter='^val/(acc|loss)$|^weights/(distance_to_true|w0)$'
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$work/profile" --hide-scrollbars \
  --window-size=1167,750 --force-device-scale-factor=1.2 --virtual-time-budget=20000 --screenshot=docs/tensorboard.png \
  "http://127.0.0.1:$port/?darkMode=false#scalars&_smoothingWeight=0&tagFilter=$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=''))" "$filter")" \
  2> /dev/null

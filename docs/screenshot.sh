#!/usr/bin/env bash
# How docs/tensorboard.png was made: the README's example run (--seed 2, reporting every 5 epochs),
# TensorBoard on 127.0.0.1, and Debian's chromium (apt-get install chromium) taking a headless screenshot.
# Run from the repository root after `make install`.
set -euo pipefail
work=$(mktemp -d)
(cd "$work" && "$OLDPWD/.venv/bin/python" "$OLDPWD/scripts/train.py" --seed 2 --log_every_n_epochs 5 > /dev/null)
.venv/bin/tensorboard --logdir "$work/lightning_logs/version_0" --host 127.0.0.1 --port 6200 > /dev/null 2>&1 &
server=$!
trap 'kill $server; rm -rf "$work"' EXIT
sleep 8
filter='^(train|val)/loss|distance_to_true|weights/w0$'
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$work/profile" --hide-scrollbars \
  --window-size=1400,780 --virtual-time-budget=20000 --screenshot=docs/tensorboard.png \
  "http://127.0.0.1:6200/?darkMode=false#scalars&_smoothingWeight=0&tagFilter=$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=''))" "$filter")"

#!/usr/bin/env bash
# The line service on embedded defaults: config/edgeinspector.yaml replays real images
# (../shared/data/magnetic_tile/magnetic_tile/test, shuffled, 5 fps, looping) as the camera, runs the default
# model and publishes verdicts, rejects, heatmaps and status on an embedded MQTT broker.
# Watch it from another terminal:
#   mosquitto_sub -h 127.0.0.1 -p 1883 -i watcher -t 'edgeinspector/#' -v
# Stop with Ctrl+C. Logs: config/logs, archived fails: config/archive.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dotnet build src/EdgeInspector.Service -c Release --nologo -v q
config="${CONFIG:-config/edgeinspector.yaml}"
port=$(awk '/^mqtt:/{m=1} m && /^  port:/{print $2; exit}' "$config")
if ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE "[:.]${port:-1883}\$"; then
  # A broker already listens there (Debian starts mosquitto when it is installed): the embedded
  # broker takes the next port in a copy of the config, so the demo runs alone either way.
  alt=$((${port:-1883} + 1))
  mkdir -p out
  sed "s/^  port: ${port:-1883}/  port: ${alt}/" "$config" | sed "s#\.\./\.\./shared#$(cd .. && pwd)/shared#g; s#^  dir: logs#  dir: $(pwd)/config/logs#; s#^  dir: archive#  dir: $(pwd)/config/archive#; s#^  spool_dir: spool#  spool_dir: $(pwd)/config/spool#" > out/demo.yaml
  echo "run: port ${port:-1883} is taken (a system mosquitto?); the embedded broker uses ${alt}: watch with"
  echo "     mosquitto_sub -h 127.0.0.1 -p ${alt} -i watcher -t 'edgeinspector/#' -v"
  config=out/demo.yaml
else
  echo "run: watch the topics with: mosquitto_sub -h 127.0.0.1 -p ${port:-1883} -i watcher -t 'edgeinspector/#' -v"
fi
exec dotnet src/EdgeInspector.Service/bin/Release/net10.0/edgeinspector.dll run --config "$config" "$@"

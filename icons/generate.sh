#!/usr/bin/env bash
# Renders icons/tether.svg into the icon set Tauri bundles (PNG sizes, Windows .ico, macOS .icns).
# Needs rsvg-convert (Debian: librsvg2-bin; Debian's ImageMagick 6 has no SVG reader without the
# "extra" coders) and ImageMagick's `convert`. The outputs are committed because tauri-build reads
# them at compile time; re-run this after editing the SVG.
set -euo pipefail
cd "$(dirname "$0")"

render() { rsvg-convert -w "$1" -h "$1" tether.svg -o "$2.tmp.png" && convert "$2.tmp.png" -strip "PNG32:$2" && rm "$2.tmp.png"; }

render 32 32x32.png
render 128 128x128.png
render 256 128x128@2x.png
render 512 icon.png
convert icon.png -define icon:auto-resize=256,64,48,32,16 icon.ico
# ImageMagick writes .icns from a PNG; Tauri only reads it when bundling for macOS.
convert icon.png icon.icns

#!/bin/sh
# Re-fetch the vendored front-end libraries under static/vendor/ from the npm registry (npm pack; no
# build step, no Node at run time). Run from the repository root after changing a version below, then
# commit the files. Each library keeps its licence beside it.
set -eu
HTMX=2.0.11
CODEMIRROR=5.65.21
CHARTJS=4.5.1
VEGA=5.33.1
VEGALITE=5.23.0
VEGAEMBED=6.29.0
GRIDSTACK=12.6.0
DRAWFLOW=0.0.60
DAGRE=3.1.3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() { (cd "$tmp" && f=$(npm pack --silent "$1@$2") && mkdir -p "$1" && tar xzf "$f" -C "$1"); }

fetch htmx.org "$HTMX"
out=static/vendor/htmx; rm -rf "$out"; mkdir -p "$out"
cp "$tmp/htmx.org/package/dist/htmx.min.js" "$tmp/htmx.org/package/LICENSE" "$out/"

fetch codemirror "$CODEMIRROR"
src="$tmp/codemirror/package"; out=static/vendor/codemirror; rm -rf "$out"; mkdir -p "$out"
cp "$src/lib/codemirror.js" "$src/lib/codemirror.css" "$src/LICENSE" "$out/"
cp "$src/mode/sql/sql.js" "$out/mode-sql.js"
cp "$src/mode/javascript/javascript.js" "$out/mode-javascript.js"
cp "$src/addon/hint/show-hint.js" "$src/addon/hint/show-hint.css" "$src/addon/hint/sql-hint.js" "$out/"
cp "$src/addon/edit/matchbrackets.js" "$out/"

fetch chart.js "$CHARTJS"
out=static/vendor/chartjs; rm -rf "$out"; mkdir -p "$out"
cp "$tmp/chart.js/package/dist/chart.umd.min.js" "$tmp/chart.js/package/LICENSE.md" "$out/"

fetch vega "$VEGA"
fetch vega-lite "$VEGALITE"
fetch vega-embed "$VEGAEMBED"
out=static/vendor/vega; rm -rf "$out"; mkdir -p "$out"
cp "$tmp/vega/package/build/vega.min.js" "$out/"
# vega's npm package ships no licence file; package.json says BSD-3-Clause, the same text and holder
# (University of Washington Interactive Data Lab) as vega-lite's LICENSE
grep -q '"license": "BSD-3-Clause"' "$tmp/vega/package/package.json"
cp "$tmp/vega-lite/package/LICENSE" "$out/LICENSE-vega"
cp "$tmp/vega-lite/package/build/vega-lite.min.js" "$out/"
cp "$tmp/vega-lite/package/LICENSE" "$out/LICENSE-vega-lite"
cp "$tmp/vega-embed/package/build/vega-embed.min.js" "$out/"
cp "$tmp/vega-embed/package/LICENSE" "$out/LICENSE-vega-embed"

fetch gridstack "$GRIDSTACK"
out=static/vendor/gridstack; rm -rf "$out"; mkdir -p "$out"
cp "$tmp/gridstack/package/dist/gridstack-all.js" "$tmp/gridstack/package/dist/gridstack.min.css" \
  "$tmp/gridstack/package/LICENSE" "$out/"

fetch drawflow "$DRAWFLOW"
out=static/vendor/drawflow; rm -rf "$out"; mkdir -p "$out"
cp "$tmp/drawflow/package/dist/drawflow.min.js" "$tmp/drawflow/package/dist/drawflow.min.css" \
  "$tmp/drawflow/package/LICENSE" "$out/"

fetch @dagrejs/dagre "$DAGRE"
out=static/vendor/dagre; rm -rf "$out"; mkdir -p "$out"
cp "$tmp/@dagrejs/dagre/package/dist/dagre.min.js" "$tmp/@dagrejs/dagre/package/LICENSE" "$out/"

cat > static/vendor/VERSIONS <<END
htmx.org $HTMX (npm), static/vendor/htmx/, 0BSD
codemirror $CODEMIRROR (npm), static/vendor/codemirror/, MIT
chart.js $CHARTJS (npm), static/vendor/chartjs/, MIT
vega $VEGA, vega-lite $VEGALITE, vega-embed $VEGAEMBED (npm), static/vendor/vega/, BSD-3-Clause
gridstack $GRIDSTACK (npm), static/vendor/gridstack/, MIT
drawflow $DRAWFLOW (npm), static/vendor/drawflow/, MIT
@dagrejs/dagre $DAGRE (npm, graphlib bundled), static/vendor/dagre/, MIT
END

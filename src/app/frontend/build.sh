#!/usr/bin/env bash
# Vendor the web app's front-end libraries from the npm registry into src/app/static/vendor/ (git-ignored),
# so that the pages load nothing from the internet. Run by `make install`; needs node and npm.
set -euo pipefail
cd "$(dirname "$0")"
vendor=../static/vendor

npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
rm -rf "$vendor"
mkdir -p "$vendor"
cp node_modules/chart.js/dist/chart.umd.min.js "$vendor/chart.umd.min.js"
cp node_modules/tom-select/dist/js/tom-select.complete.min.js "$vendor/tom-select.complete.min.js"
cp node_modules/tom-select/dist/css/tom-select.default.min.css "$vendor/tom-select.default.min.css"
for package in chart.js tom-select; do
  cp node_modules/"$package"/LICENSE* "$vendor/LICENSE.$package"
done
node -e 'const l=require("./package-lock.json").packages; console.log(JSON.stringify(
  Object.fromEntries(["chart.js","tom-select"].map(n=>[n,l["node_modules/"+n].version])), null, 2))' > "$vendor/versions.json"
echo "vendored into src/app/static/vendor: $(ls "$vendor" | tr '\n' ' ')"

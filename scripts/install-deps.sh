#!/usr/bin/env bash
# Installs what attnlab needs on Debian 12 / Ubuntu, as root or through sudo.
# Safe to run twice: it only calls apt-get when a package is missing.
set -euo pipefail

# clang builds the sanitizer + fuzzing build (preset `sanitize`); libFuzzer's
# runtime (libclang_rt.fuzzer) comes apart from it, in libclang-rt-<major>-dev
# (Debian 12: clang 14, libclang-rt-14-dev).
clang_major=$(clang -dumpversion 2>/dev/null ||
              apt-cache depends clang 2>/dev/null | grep -o 'clang-[0-9]*' | head -n1 | tr -dc '0-9' || true)
clang_major=${clang_major%%.*}
# libopenmpi-dev, openmpi-bin: several processes (--data-parallel, core/comm/).
# fonts-dejavu-core: DejaVu Sans for the text of the plots (stb_truetype);
# without it they fall back to a built-in bitmap font.
packages=(g++ cmake ninja-build libopenblas-dev libgtest-dev libcli11-dev libstb-dev fonts-dejavu-core
          nlohmann-json3-dev clang "libclang-rt-${clang_major:-14}-dev" libopenmpi-dev openmpi-bin "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

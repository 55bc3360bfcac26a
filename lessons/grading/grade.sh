#!/usr/bin/env bash
# One student, one command: their repository (a folder or a git URL) in, a
# Gradescope results.json out.
#
#   bash lessons/grading/grade.sh STUDENT OUT.json [attnlab lesson grade options]
#   bash lessons/grading/grade.sh ~/subs/alice results.json 01 04 --hidden ~/course/hidden
#
# Only the student's own files are taken from their repository: for each
# chapter, the files that have a counterpart in solution/ (the stubs they
# fill in). Everything else -- the framework, the suites, the glue code,
# grading.json, the grader itself -- comes from this (the teacher's) copy of
# the course, so a submission cannot change how it is graded. A chapter the
# student did not submit keeps the untouched stub and scores 0, "not
# started". The grading tree and its build stay in build/grading/ between
# runs (or ATTNLAB_GRADING_TREE): after the first build, a student costs the
# rebuild of the chapter files and the tests. Needs what scripts/install-deps.sh installs (and git
# for a URL: bash scripts/install-deps.sh git).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: grade.sh STUDENT (folder or git URL) OUT.json [lesson grade options]" >&2; exit 2; }
student=$1 out=$2
shift 2
course=$(cd "$(dirname "$0")/../.." && pwd)
tree=${ATTNLAB_GRADING_TREE:-$course/build/grading}
mkdir -p "$tree/src"

if [ ! -d "$student" ]; then
  fetched=$(mktemp -d)
  trap 'rm -rf "$fetched"' EXIT
  git clone --quiet --depth 1 "$student" "$fetched/repo"
  student=$fetched/repo
fi

# The course, as the teacher has it (no build folders, no git history).
tar -C "$course" --exclude=./build --exclude=./.git -cf - . | tar -C "$tree/src" -xf -
# The student's files over the stubs, with a fresh time stamp so that the
# build recompiles them whatever the previous student submitted.
for solution in "$course"/lessons/[0-9][0-9]_*/solution/*; do
  chapter=$(basename "$(dirname "$(dirname "$solution")")")
  file=$(basename "$solution")
  mine=$student/lessons/$chapter/$file
  [ -f "$mine" ] || mine=$course/lessons/$chapter/$file
  cp "$mine" "$tree/src/lessons/$chapter/$file"
  touch "$tree/src/lessons/$chapter/$file"
done

[ -f "$tree/build/build.ninja" ] ||
  cmake -S "$tree/src" -B "$tree/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNLAB_LESSONS=student \
        -DATTNLAB_CUDA=OFF -DATTNLAB_BUILD_BENCH=OFF > /dev/null
# What grading runs: the attnlab binary and every chapter's suites (the
# student's build, and the solution's, which lists the tests).
suites=$(cmake --build "$tree/build" --target help | grep -oE 'lesson[0-9]+_(basic|advanced)_(student|solution)' | sort -u)
# A submission that does not compile scores 0, and results.json says why
# (the compiler's error lines) instead of leaving the platform without a grade.
log=$tree/build.log
# shellcheck disable=SC2086  # a list of target names
if ! cmake --build "$tree/build" --target attnlab $suites > "$log" 2>&1; then
  tail -n 60 "$log" >&2
  json_text() { sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/ /g' | tr -d '\000-\010\013-\037' | awk '{printf "%s\\n", $0}'; }
  {
    printf '{"score": 0.0, "tests": [], "output": "The submission does not compile; the compiler says:\\n'
    grep -E 'error|Error' "$log" | head -n 40 | json_text
    printf '"}\n'
  } > "$out.tmp-$$"
  mv "$out.tmp-$$" "$out"
  echo "grade.sh: the submission does not compile: 0 points, written to $out" >&2
  exit 0
fi
"$tree/build/attnlab" lesson grade "$@" --format gradescope --output "$out"

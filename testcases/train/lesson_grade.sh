#!/usr/bin/env bash
# `attnlab lesson grade` end to end on chapter 01 of this build:
#   the untouched stub (the student's library here) scores 0, "not started";
#   the reference solution (--solution, the teacher's check) scores the maximum;
#   the example hidden suite builds against both and is shown after the due date;
#   results.json passes our schema check; the JUnit XML has one testcase per test.
# usage: lesson_grade.sh <attnlab> <gradescope_check> <source dir>
set -euo pipefail
bin=$1 check=$2 src=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
hidden=$src/lessons/grading/hidden_example
n_hidden=$(grep -c '^TEST(' "$hidden"/01_softmax_attention/*.cpp)

# "lesson grade: 12.00 / 63.00 points; ..." -> "12.00 63.00"
points() { sed -n 's/^lesson grade: \([0-9.]*\) \/ \([0-9.]*\) points.*/\1 \2/p' "$1"; }

"$bin" lesson grade 01 --hidden "$hidden" --format gradescope --output "$dir/stub.json" > "$dir/stub.out"
"$check" "$dir/stub.json" || fail "the stub's results.json does not pass the schema check"
read -r got max < <(points "$dir/stub.out")
[ "$got" = 0.00 ] || fail "the untouched stub scores $got, not 0"
# No grading.json in chapter 01: 1 point per test, 0 for one skipped here (GPU tests without a GPU).
tests=$(grep -c '"number":' "$dir/stub.json")
graded=$(grep -c '"max_score": 1.0' "$dir/stub.json")
[ "$max" = "$graded.00" ] || fail "max $max is not one point per graded test ($graded of $tests)"
grep -q '01_softmax_attention: 0 / [0-9]* (not started)' "$dir/stub.json" || fail "the stub chapter is not 'not started'"
[ "$(grep -c '"visibility": "after_due_date"' "$dir/stub.json")" = "$n_hidden" ] ||
  fail "not every one of the $n_hidden hidden tests is marked after_due_date"
grep -q '"name": "01_softmax_attention / hidden / Hidden01.CausalAttentionMatchesALoopOracle"' "$dir/stub.json" ||
  fail "the hidden tests did not run against the student's library"

"$bin" lesson grade 01 --solution --hidden "$hidden" --format junit --output "$dir/solution.xml" > "$dir/solution.out"
read -r got max < <(points "$dir/solution.out")
[ "$got" = "$max" ] && [ "$max" = "$graded.00" ] || fail "the reference solution scores $got of $max (expected $graded)"
[ "$(grep -c '<testcase ' "$dir/solution.xml")" = "$tests" ] || fail "the JUnit XML does not have one testcase per test"
! grep -q '<failure\|<error' "$dir/solution.xml" || fail "the solution's JUnit XML reports failures"
echo "lesson_grade: stub 0 / $max, solution $got / $max, $n_hidden hidden tests after the due date"

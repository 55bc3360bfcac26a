#!/usr/bin/env bash
# `attnlab launch` (train/launch.h): each rank's environment, a failed rank
# stopping the others, a rank killed by a signal, SIGINT passed on to every
# rank, the ranks dying with a killed launcher, the NCCL id, bad inputs.
# Usage: launch.sh ATTNLAB
set -euo pipefail
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. Every rank learns its place.
"$bin" launch --nproc 3 -- sh -c 'echo "$ATTNLAB_RANK $ATTNLAB_WORLD_SIZE $ATTNLAB_LOCAL_RANK ${ATTNLAB_NCCL_ID:-none}" > "$0/r$ATTNLAB_RANK"' "$dir" \
  || fail "three ranks that succeed: exit $?"
for r in 0 1 2; do
  [ "$(cat "$dir/r$r")" = "$r 3 $r none" ] || fail "rank $r's environment: $(cat "$dir/r$r" 2>&1)"
done

# 2. A rank that fails ends the others long before their 60 s, and its
#    status is the launcher's.
start=$SECONDS
set +e
"$bin" launch --nproc 3 --grace 5 -- sh -c '[ "$ATTNLAB_RANK" = 1 ] && exit 3; exec sleep 60' 2> "$dir/err2"
status=$?
set -e
[ "$status" = 3 ] || fail "a rank exiting 3: the launcher exited $status"
[ $((SECONDS - start)) -lt 20 ] || fail "the other ranks were not stopped: $((SECONDS - start)) s"
grep -q "a rank ended with status 3: stopping the other 2" "$dir/err2" || fail "message: $(cat "$dir/err2")"

# 3. A rank that ignores SIGTERM gets SIGKILL after the grace period.
start=$SECONDS
set +e
"$bin" launch --nproc 2 --grace 1 -- sh -c '[ "$ATTNLAB_RANK" = 0 ] && exit 5; trap "" TERM; sleep 60' 2> /dev/null
status=$?
set -e
[ "$status" = 5 ] || fail "status with a stubborn rank: $status"
[ $((SECONDS - start)) -lt 20 ] || fail "the stubborn rank was not killed: $((SECONDS - start)) s"

# 4. A rank ended by a signal: 128 + the signal.
set +e
"$bin" launch --nproc 2 --grace 1 -- sh -c '[ "$ATTNLAB_RANK" = 1 ] && kill -KILL $$; exec sleep 60' 2> /dev/null
status=$?
set -e
[ "$status" = 137 ] || fail "a rank killed by SIGKILL: the launcher exited $status"

# 5. SIGINT to the launcher reaches every rank once; they stop on their own.
"$bin" launch --nproc 2 -- sh -c 'trap "echo int >> $0/int$ATTNLAB_RANK; exit 0" INT; touch "$0/up$ATTNLAB_RANK"; while :; do sleep 0.1; done' "$dir" &
launcher=$!
# A watchdog, should the ranks never hear of it. Its output goes nowhere:
# a sleep left holding ctest's pipe would keep ctest waiting for it.
(sleep 30; kill -KILL "$launcher") > /dev/null 2>&1 &
watchdog=$!
for _ in $(seq 100); do [ -e "$dir/up0" ] && [ -e "$dir/up1" ] && break; sleep 0.1; done
kill -INT "$launcher"
set +e
wait "$launcher"
status=$?
set -e
kill "$watchdog" 2> /dev/null || true
[ "$status" = 0 ] || fail "ranks that stop cleanly on SIGINT: the launcher exited $status"
for r in 0 1; do
  [ "$(cat "$dir/int$r" 2>/dev/null)" = "int" ] || fail "rank $r saw SIGINT $(wc -l < "$dir/int$r" 2>/dev/null || echo 0) times"
done

# 6. kill -9 of the launcher: the ranks die with it.
"$bin" launch --nproc 2 -- sh -c 'echo $$ > "$0/pid$ATTNLAB_RANK"; exec sleep 60' "$dir" &
launcher=$!
for _ in $(seq 100); do [ -s "$dir/pid0" ] && [ -s "$dir/pid1" ] && break; sleep 0.1; done
kill -KILL "$launcher"
wait "$launcher" 2> /dev/null || true
sleep 1
# (A dead rank whose new parent does not reap it stays a zombie: not alive.)
running() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2> /dev/null; }
for r in 0 1; do
  if running "$(cat "$dir/pid$r")"; then fail "rank $r outlived the killed launcher"; fi
done

# 7. The NCCL id: the same 256 hex digits for every rank, or, without
#    NCCL, a message that says how to get it.
set +e
"$bin" launch --nproc 2 --nccl -- sh -c 'echo "$ATTNLAB_NCCL_ID" > "$0/id$ATTNLAB_RANK"' "$dir" 2> "$dir/err7"
status=$?
set -e
if [ "$status" = 0 ]; then
  [ "$(cat "$dir/id0")" = "$(cat "$dir/id1")" ] || fail "the ranks got different NCCL ids"
  grep -Eq '^[0-9a-f]{256}$' "$dir/id0" || fail "NCCL id: $(cat "$dir/id0")"
else
  grep -q "pip install nvidia-nccl-cu13" "$dir/err7" || fail "--nccl without NCCL: $(cat "$dir/err7")"
fi

# 8. Bad inputs.
if "$bin" launch --nproc 0 -- true 2> "$dir/err8"; then fail "--nproc 0 ran"; fi
grep -q "attnlab: launch: --nproc must be at least 1, got 0" "$dir/err8" || fail "--nproc 0 message: $(cat "$dir/err8")"
if "$bin" launch --nproc 2 2> "$dir/err9"; then fail "a launch without a command ran"; fi
grep -q "launch: no command to run" "$dir/err9" || fail "no-command message: $(cat "$dir/err9")"
set +e
"$bin" launch --nproc 1 -- /nonexistent/program 2> "$dir/err10"
status=$?
set -e
[ "$status" = 127 ] || fail "a command that cannot run: status $status"
grep -q "rank 0: cannot run '/nonexistent/program'" "$dir/err10" || fail "exec message: $(cat "$dir/err10")"
echo "launch: all checks passed"

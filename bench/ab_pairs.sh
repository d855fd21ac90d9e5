#!/usr/bin/env bash
# Paired A/B of one bench between two built worktrees: in each pair A and B run the same
# command at the same time, each in its own network namespace (/work/bin/isolated style:
# unshare -n), so both see the same machine load. On a shared VM whose load changes within
# one run, alternating runs compare the load, not the code (docs/benchmarks.md, "Before and after").
#
#   bash bench/ab_pairs.sh TREE_A TREE_B PAIRS OUT_DIR -- python bench/bench_bringup.py ...
#
# Each tree must be built (scripts/colcon_build.sh); the command runs from the tree's root
# with its scripts/env.sh sourced. Output: OUT_DIR/<pair>_A.txt and <pair>_B.txt.
set -eu
[ $# -ge 6 ] && [ "$5" = -- ] || { sed -n 2,10p "$0"; exit 2; }
tree_a=$1 tree_b=$2 pairs=$3 out=$4
shift 5
mkdir -p "$out"
run() {  # $1 tree, $2 output file, then the command
  local tree=$1 file=$2
  shift 2
  (cd "$tree" && set +u && source scripts/env.sh && \
     unshare -n bash -c 'ip link set lo up && exec "$@"' isolated "$@") > "$file" 2>&1
}
for pair in $(seq 1 "$pairs"); do
  run "$tree_a" "$out/${pair}_A.txt" "$@" & a=$!
  run "$tree_b" "$out/${pair}_B.txt" "$@" & b=$!
  wait "$a" "$b" || echo "pair $pair: a run failed (see its file)" >&2
  echo "pair $pair done: $out/${pair}_A.txt $out/${pair}_B.txt"
done

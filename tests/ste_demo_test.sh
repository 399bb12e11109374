#!/usr/bin/env bash
# The STE demo: exits 0 only when its written-out rules equal the library op's gradients; and a few
# rows against values worked out by hand (s = 0.5, z = 0, [-4, 3]).
set -u
out=$("$1") || { echo "tq_ste_demo failed"; exit 1; }
pass=0 fail=0
check() { if echo "$out" | grep -qE -- "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "missing: $1"; fi; }
check '^ +-2\.250 +-4 +-4 +-2\.000 .*\| +1 +1 +0\.0962$'   # -4.5 ties to even (-4): inside, passes
check '^ +1\.760 +4 +3 +1\.500 .*\| +0 +1 +0\.5774$'       # 3.52 rounds to 4 > 3: cut; LSQ g*(qmax - z)
check '^ +-0\.250 +0 +0 +0\.000 .* undefined'              # a step inside +-h: the true derivative does not exist
check 'LSQ: dL/ds = 0\.3310 from the op, 0\.3310 as the sum'
echo "ste_demo: $pass passed, $fail failed"
[ "$fail" = 0 ]

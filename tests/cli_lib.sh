# The shell tests' harness, sourced by them: a scratch folder ($tmp, removed at exit), the counts
# (ok, bad), and expect STATUS DESCRIPTION -- command...: runs the command with stdout in
# $tmp/out and stderr in $tmp/err, and counts whether it exited with STATUS.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() {
  local want="$1" what="$2"; shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?
  if [ "$got" = "$want" ]; then ok; else bad "$what: exit $got, want $want"; sed 's/^/  | /' "$tmp/err" | head -5; fi
}

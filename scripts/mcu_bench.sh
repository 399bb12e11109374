#!/usr/bin/env bash
# Flash, RAM and instructions per inference of an exported model on a Cortex-M4 (QEMU).
#   scripts/mcu_bench.sh MODEL.tqm INSNCOUNT_PLUGIN.c [DATA_DIR]
# DATA_DIR: a dataset whose images fit the model (one is exported with it); MNIST's by default.
# The build allows 256 KiB of flash for model and code (a real part's, as MLPerf Tiny's boards).
# INSNCOUNT_PLUGIN.c is a QEMU TCG plugin counting instructions between the guest's
# insn_mark_start and insn_mark_stop (Debian's QEMU ships none; build it from its source).
set -euo pipefail
[ $# -eq 2 ] || [ $# -eq 3 ] || { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
model=$1 plugin_src=$2 data=()
[ $# -eq 3 ] && data=(--data "$3")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gcc -shared -fPIC -O2 $(pkg-config --cflags glib-2.0 2>/dev/null) -o "$tmp/insncount.so" "$plugin_src"
"$root/build/tinyqat" export "$model" --c "$tmp/model" --test-images 1 "${data[@]}" >/dev/null
for variant in "" --portable; do
  "$root/examples/mcu/build_and_run.sh" "$tmp/model" "$tmp/app.elf" --no-run $variant --flash-kib 256
  start=$(arm-none-eabi-nm "$tmp/app.elf" | awk '$3 == "insn_mark_start" { print "0x" $1 }')
  stop=$(arm-none-eabi-nm "$tmp/app.elf" | awk '$3 == "insn_mark_stop" { print "0x" $1 }')
  insns=$(timeout 60 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none -chardev stdio,id=sh0 \
          -semihosting-config enable=on,target=native,chardev=sh0 -icount shift=0 \
          -plugin "$tmp/insncount.so,start=$start,stop=$stop" -kernel "$tmp/app.elf" </dev/null 2>&1 |
          sed -n 's/.*region 1: \([0-9]*\) instructions.*/\1/p')
  read -r text rodata data bss < <(arm-none-eabi-size -A "$tmp/app.elf" |
    awk '$1==".isr_vector"{v=$2} $1==".text"{t=$2} $1==".rodata"{r=$2} $1==".data"{d=$2} $1==".bss"{b=$2} END{print v+t, r, d, b}')
  echo "${variant:---dsp} kernel: ${insns} instructions per inference; flash $((text + rodata + data)) bytes (code $text, model $rodata); RAM besides the stack $((data + bss)) bytes"
done

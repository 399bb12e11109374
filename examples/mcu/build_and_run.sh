#!/usr/bin/env bash
# Cross-compile an exported model (tinyqat export --c DIR --test-images N) with this folder's
# start-up code for a Cortex-M4, and run it under QEMU (mps2-an386).
#   examples/mcu/build_and_run.sh EXPORT_DIR OUT.elf [--no-run] [--portable]
# --portable: the plain C loops instead of the SMLAD (DSP extension) kernel.
# The exit status is the program's: 0 when every logit equals the host integer path's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="$1" elf="$2"; shift 2
run=1 dsp=""
for a in "$@"; do
  case "$a" in
    --no-run) run=0 ;;
    --portable) dsp="-DTQ_PORTABLE=1" ;;
    *) echo "build_and_run.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
arm-none-eabi-gcc -std=c11 -Wall -Wextra -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2 \
  -ffreestanding -ffunction-sections -fdata-sections -nostdlib -nostartfiles $dsp \
  -I"$here" -I"$src" "$here/startup.c" "$here/mcu_main.c" "$src/tq_model.c" "$src/int8_infer.c" \
  -T "$here/link.ld" -Wl,--gc-sections -o "$elf" -lgcc
[ "$run" = 1 ] || exit 0
timeout --kill-after=5 120 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
  -chardev stdio,id=sh0 -semihosting-config enable=on,target=native,chardev=sh0 -kernel "$elf" </dev/null

#!/usr/bin/env bash
# Cross-compile an exported model (tinyqat export --c DIR --test-images N) with this folder's
# start-up code for a Cortex-M4, and run it under QEMU (mps2-an386).
#   examples/mcu/build_and_run.sh EXPORT_DIR OUT.elf [--no-run] [--portable] [--flash-kib N]
# --portable: the plain C loops instead of the SMLAD (DSP extension) kernel. --flash-kib: the
# part's flash for model and code (92 by default).
# The exit status is the program's: 0 when every logit equals the host integer path's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="$1" elf="$2"; shift 2
run=1 dsp="" flash=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-run) run=0 ;;
    --portable) dsp="-DTQ_PORTABLE=1" ;;
    --flash-kib) [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || { echo "build_and_run.sh: --flash-kib takes a number of KiB" >&2; exit 2; }
                 flash=(-Wl,--defsym=tq_flash_kib="$2"); shift ;;
    *) echo "build_and_run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
arm-none-eabi-gcc -std=c11 -Wall -Wextra -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2 \
  -ffreestanding -ffunction-sections -fdata-sections -nostdlib -nostartfiles $dsp \
  -I"$here" -I"$src" "$here/startup.c" "$here/mcu_main.c" "$src/tq_model.c" "$src/int8_infer.c" \
  -T "$here/link.ld" -Wl,--gc-sections "${flash[@]}" -o "$elf" -lgcc
[ "$run" = 1 ] || exit 0
timeout --kill-after=5 120 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
  -chardev stdio,id=sh0 -semihosting-config enable=on,target=native,chardev=sh0 -kernel "$elf" </dev/null

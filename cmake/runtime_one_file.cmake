# cmake -DOUT=int8_infer.c -DDIR=runtime -P runtime_one_file.cmake
# The integer runtime's parts joined into the one int8_infer.c an export writes: internal.h, the
# reference kernels, the DSP kernels and the runner, in that order, without the parts' includes of
# internal.h, under TQ_RUNTIME_ONE_FILE (what the parts share becomes static, as in one file).
set(text "/* The integer runtime in one file: runtime/internal.h, kernels_ref.c, kernels_dsp.c and net.c */\n#define TQ_RUNTIME_ONE_FILE 1\n")
foreach(f internal.h kernels_ref.c kernels_dsp.c net.c)
  file(READ ${DIR}/${f} body)
  string(REPLACE "#include \"runtime/internal.h\"\n" "" body "${body}")
  string(APPEND text "\n/* ---- runtime/${f} ---- */\n${body}")
endforeach()
file(WRITE ${OUT}.tmp "${text}")
file(RENAME ${OUT}.tmp ${OUT})

# The exported C module on an emulated Cortex-M4 (tests/mcu_test.sh); skips without the toolchain.
if(TARGET tinyqat_cli AND TARGET tq_graphgen)
  add_test(NAME mcu COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mcu_test.sh $<TARGET_FILE:tinyqat_cli>)
  set_tests_properties(mcu PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()

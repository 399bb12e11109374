# The command-line program's end-to-end checks (tests/cli_test.sh).
if(TARGET tinyqat_cli)
  add_test(NAME cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_test.sh $<TARGET_FILE:tinyqat_cli>)
  # (about 300 s alone under ASan: room for a busy machine)
  set_tests_properties(cli PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" TIMEOUT 1500)
  add_test(NAME cli_usability COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_usability_test.sh $<TARGET_FILE:tinyqat_cli>)
  set_tests_properties(cli_usability PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" TIMEOUT 900)
endif()

# Bad input for every command (tests/bad_inputs.sh): one-line errors, non-zero exits, no damage.
if(TARGET tinyqat_cli)
  add_test(NAME bad_inputs COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bad_inputs.sh $<TARGET_FILE:tinyqat_cli>)
  set_tests_properties(bad_inputs PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" TIMEOUT 900)
endif()

# The STE demo checks itself against the library and prints hand-checkable rows.
if(TARGET tq_ste_demo)
  add_test(NAME ste_demo COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/ste_demo_test.sh $<TARGET_FILE:tq_ste_demo>)
endif()

# Install into a temporary prefix and build examples/library against it (pkg-config and
# find_package). Not under the sanitizers: an outside program does not link their runtimes.
if(TARGET tinyqat_cli AND NOT TQ_SANITIZE)
  add_test(NAME install COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/install_test.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(install PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" TIMEOUT 600)
endif()

# docs/TUTORIAL.md against its commands (docs/run_tutorial.sh --check), and the check against a
# changed copy. Not under the sanitizers (minutes of training for nothing new).
if(TARGET tinyqat_cli AND NOT TQ_SANITIZE)
  add_test(NAME tutorial COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tutorial_test.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(tutorial PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()

# export --tflite run by Arm NN's TFLite parser and reference backend (tests/tflite_test.sh);
# skipped without pyarmnn or MNIST. Not under the sanitizers: the runtime is Python's.
if(TARGET tinyqat_cli AND NOT TQ_SANITIZE AND NOT TQ_TSAN)
  add_test(NAME tflite COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tflite_test.sh $<TARGET_FILE:tinyqat_cli>)
  set_tests_properties(tflite PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()

# export --onnx run by ONNX Runtime and accepted by the ONNX checker (tests/onnx_test.sh); skipped
# without them or MNIST. Not under the sanitizers: the runtimes are Node's and Python's.
if(TARGET tinyqat_cli AND NOT TQ_SANITIZE AND NOT TQ_TSAN)
  add_test(NAME onnx COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/onnx_test.sh $<TARGET_FILE:tinyqat_cli>)
  set_tests_properties(onnx PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1" SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()

# tinyqat import: ONNX round trips, and PyTorch's own models when python3-torch is there
# (tests/onnx_import_test.sh); skipped without MNIST.
if(TARGET tinyqat_cli AND NOT TQ_SANITIZE AND NOT TQ_TSAN)
  add_test(NAME onnx_import COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/onnx_import_test.sh $<TARGET_FILE:tinyqat_cli>)
  set_tests_properties(onnx_import PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1" SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()

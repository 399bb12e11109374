# The integer runtime must not touch floating point: on x86-64, -mgeneral-regs-only makes any
# float or double in src/int8_infer.c a compile error. -Wconversion catches silent narrowing.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64" AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
  set_source_files_properties(${PROJECT_SOURCE_DIR}/src/int8_infer.c PROPERTIES
    COMPILE_OPTIONS "-mgeneral-regs-only;-Wconversion;-Wsign-conversion")
endif()

# The integer runtime must not touch floating point: on x86-64, -mgeneral-regs-only makes any
# float or double in runtime/*.c a compile error. -Wconversion catches silent narrowing.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64" AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
  file(GLOB TQ_RUNTIME_SOURCES ${PROJECT_SOURCE_DIR}/runtime/*.c)
  set_source_files_properties(${TQ_RUNTIME_SOURCES} PROPERTIES
    COMPILE_OPTIONS "-mgeneral-regs-only;-Wconversion;-Wsign-conversion")
endif()

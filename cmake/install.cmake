# cmake --install: the umbrella include/tinyqat.h and the module headers under include/tinyqat/ in
# their folders (<tinyqat/runtime/int8_infer.h>; they include each other by relative paths, so only
# include/ is on a user's include path, never a folder named src), libtinyqat.so (with a soname) and libtinyqat.a, the
# freestanding runtime libtinyqat_runtime.a, the tinyqat program, tinyqat.pc for pkg-config, and
# a CMake package: find_package(tinyqat) gives tinyqat::tinyqat (shared), tinyqat::tinyqat_static
# and tinyqat::runtime.
include(CMakePackageConfigHelpers)

set_target_properties(tinyqat PROPERTIES EXPORT_NAME tinyqat_static)
set_target_properties(tinyqat_shared PROPERTIES EXPORT_NAME tinyqat)
set_target_properties(tinyqat_runtime PROPERTIES EXPORT_NAME runtime)

# the installed umbrella names its headers under tinyqat/ (in the tree they are found from the root)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/tinyqat.h)
file(READ ${PROJECT_SOURCE_DIR}/include/tinyqat.h TQ_UMBRELLA)
string(REGEX REPLACE "#include \"(src|runtime|layers|optim|data|pipeline)/" "#include \"tinyqat/\\1/" TQ_UMBRELLA "${TQ_UMBRELLA}")
file(WRITE ${PROJECT_BINARY_DIR}/install-include/tinyqat.h "${TQ_UMBRELLA}")
install(FILES ${PROJECT_BINARY_DIR}/install-include/tinyqat.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
foreach(h ${TQ_HEADERS})
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${h})
  if(rel STREQUAL "runtime/internal.h") # the runtime's insides: not part of the API
    continue()
  endif()
  get_filename_component(sub ${rel} DIRECTORY)
  install(FILES ${h} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tinyqat/${sub})
endforeach()

install(TARGETS tinyqat tinyqat_shared tinyqat_runtime EXPORT tinyqatTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT tinyqatTargets NAMESPACE tinyqat:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tinyqat)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tinyqatConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tinyqatConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tinyqat)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tinyqatConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tinyqatConfig.cmake ${PROJECT_BINARY_DIR}/tinyqatConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tinyqat)

# The .pc file finds its prefix from where it lies (${pcfiledir}), so an installed tree can move.
file(RELATIVE_PATH TQ_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(${PROJECT_SOURCE_DIR}/cmake/tinyqat.pc.in ${PROJECT_BINARY_DIR}/tinyqat.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tinyqat.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

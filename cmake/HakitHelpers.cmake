# Small helpers so that adding a component is three lines.

# hakit_library(NAME SOURCES a.cc b.cc DEPS x y)
# A static library whose public headers live in ./include.
function(hakit_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  endif()
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# hakit_module(NAME SOURCES a.cc DEPS x)
# A module library loaded by hakitd through Boost.DLL: sees only the SDK.
# The output goes to ${CMAKE_BINARY_DIR}/modules/NAME.so.
function(hakit_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES PREFIX "" OUTPUT_NAME ${name}
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/modules)
  target_link_libraries(${name} PRIVATE hakit_sdk ${ARG_DEPS})
endfunction()

# hakit_test(NAME SOURCES a_test.cc DEPS x LABELS unit TIMEOUT 60 LOCK name)
# A GoogleTest binary registered with CTest, one CTest entry per test case,
# named NAME.Suite.Case so that `ctest -R NAME` selects the binary's tests.
function(hakit_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT;LOCK" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    HAKIT_SOURCE_DIR="${CMAKE_SOURCE_DIR}" HAKIT_BINARY_DIR="${CMAKE_BINARY_DIR}")
  include(GoogleTest)
  # One label per test binary ("unit", "netns", ...): CTest properties set
  # through gtest_discover_tests do not carry lists.
  # LOCK: tests sharing a lock never run at once under `ctest -j` (timing
  # tests that would otherwise compete for the 2 cores).
  list(GET ARG_LABELS 0 label)
  set(lock_property)
  if(ARG_LOCK)
    set(lock_property RESOURCE_LOCK ${ARG_LOCK})
  endif()
  gtest_discover_tests(${name} TEST_PREFIX "${name}." DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS ${label} ${lock_property})
endfunction()

# hakit_module_package(NAME [BIN program_target...])
# Packs module library NAME as ${CMAKE_BINARY_DIR}/packages/NAME.safe in the
# normal build: the module folder is staged in packages/NAME/ (conf/ and bin/
# of the module's source folder, the BIN targets' programs in bin/, the
# library as lib/NAME.so), then packed by the hakit CLI just built, so that
# the package passes the same checks as one an operator makes. Rebuilt when
# the library, a program, the CLI or a file of conf/ or bin/ changes.
function(hakit_module_package name)
  cmake_parse_arguments(ARG "" "" "BIN" ${ARGN})
  set(src ${CMAKE_CURRENT_SOURCE_DIR})
  set(stage ${CMAKE_BINARY_DIR}/packages/${name})
  set(out ${CMAKE_BINARY_DIR}/packages/${name}.safe)
  file(GLOB_RECURSE files CONFIGURE_DEPENDS ${src}/conf/* ${src}/bin/*)
  set(copy_bin)
  if(EXISTS ${src}/bin OR ARG_BIN)
    list(APPEND copy_bin COMMAND ${CMAKE_COMMAND} -E make_directory ${stage}/bin)
  endif()
  if(EXISTS ${src}/bin)
    list(APPEND copy_bin COMMAND ${CMAKE_COMMAND} -E copy_directory ${src}/bin ${stage}/bin)
  endif()
  foreach(program ${ARG_BIN})
    list(APPEND copy_bin COMMAND ${CMAKE_COMMAND} -E copy $<TARGET_FILE:${program}> ${stage}/bin/)
  endforeach()
  # A fresh stage each time: a file removed from conf/ leaves the package.
  # --root: the %SAFE...% variables the check expands come from the build,
  # never from the builder's HAKIT_ROOT or /var/lib/hakit.
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${stage} ${out}
    COMMAND ${CMAKE_COMMAND} -E copy_directory ${src}/conf ${stage}/conf
    ${copy_bin}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${stage}/lib
    COMMAND ${CMAKE_COMMAND} -E copy $<TARGET_FILE:${name}> ${stage}/lib/${name}.so
    COMMAND $<TARGET_FILE:hakit> --root ${CMAKE_BINARY_DIR}/packages/root module package
            ${stage} -o ${out} -m ${name} --version ${PROJECT_VERSION}
    DEPENDS hakit ${name} ${ARG_BIN} ${files}
    COMMENT "Packing module ${name} as packages/${name}.safe"
    VERBATIM)
  add_custom_target(${name}_package ALL DEPENDS ${out})
endfunction()

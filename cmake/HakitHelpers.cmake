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

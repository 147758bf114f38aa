# prism_module(NAME <name> DIR <dir> [DEPS <targets...>] [PRIVATE_DEPS <targets...>])
#
# One static, position-independent library per module with a public include/ and a
# private src/.  Sources are every src/*.c (CONFIGURE_DEPENDS re-globs on build), so adding
# a file to a module needs no CMake edit.  The alias prism::<name> is what other modules
# link.  Static archives are folded into the shared libprism, whose export map decides what
# users see (hidden visibility by default, PRISM_API to export).
function(prism_module)
  cmake_parse_arguments(M "" "NAME" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB _srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.c)
  set(_t prism_${M_NAME})
  add_library(${_t} STATIC ${_srcs})
  add_library(prism::${M_NAME} ALIAS ${_t})
  target_include_directories(${_t} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/prism>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${_t} PUBLIC ${M_DEPS} PRIVATE ${M_PRIVATE_DEPS})
  set_target_properties(${_t} PROPERTIES OUTPUT_NAME prism_${M_NAME})
endfunction()

# prism_planned_module(NAME <name> DEPS <targets...>)
#
# A module whose code has not landed yet: an INTERFACE target that already carries its
# place in the layering, so that higher modules link it today and the day it gains
# sources nothing above it changes.
function(prism_planned_module)
  cmake_parse_arguments(M "" "NAME" "DEPS" ${ARGN})
  add_library(prism_${M_NAME} INTERFACE)
  add_library(prism::${M_NAME} ALIAS prism_${M_NAME})
  target_link_libraries(prism_${M_NAME} INTERFACE ${M_DEPS})
endfunction()

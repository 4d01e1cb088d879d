# tollgate_embed(TARGET_VAR NAME SYMBOL FILE...)
# Generates a .cpp defining `std::string_view SYMBOL(std::string_view name)`-style lookup of the
# given files' contents, so schemas and default templates ship inside the binary and stay in sync
# with the files users and editors read.
set(TOLLGATE_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_script.cmake)

function(tollgate_embed out_var namespace)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${namespace}_embedded.cpp)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DNAMESPACE=${namespace} "-DFILES=${ARGN}"
            -P ${TOLLGATE_EMBED_SCRIPT}
    DEPENDS ${ARGN} ${TOLLGATE_EMBED_SCRIPT}
    COMMENT "Embedding ${namespace} resources"
    VERBATIM)
  set(${out_var} ${out} PARENT_SCOPE)
endfunction()

# Generates the manual page and the shell completion scripts by running the
# program built from this tree (its embedded Lua, never installed copies):
#   cmake -DPROGRAM=... -DOUTPUT_DIR=... [-DEMULATOR=...] -P generate_docs.cmake
# (EMULATOR: what runs a cross-compiled PROGRAM, e.g. qemu-aarch64-static;-L;/)
# Writes OUTPUT_DIR/man/man1/mxpc-data-migration.1,
# OUTPUT_DIR/bash-completion/completions/mxpc-data-migration and
# OUTPUT_DIR/zsh/site-functions/_mxpc-data-migration.
set(ENV{MXPC_DATADIR} "")
set(ENV{MXPC_SCRIPTS} "")
foreach(item "man/man1/mxpc-data-migration.1|help;--man"
             "bash-completion/completions/mxpc-data-migration|completion;bash"
             "zsh/site-functions/_mxpc-data-migration|completion;zsh")
  string(REPLACE "|" ";" parts "${item}")
  list(POP_FRONT parts rel)
  get_filename_component(dir "${OUTPUT_DIR}/${rel}" DIRECTORY)
  file(MAKE_DIRECTORY "${dir}")
  execute_process(COMMAND ${EMULATOR} "${PROGRAM}" ${parts}
                  OUTPUT_FILE "${OUTPUT_DIR}/${rel}.new" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${PROGRAM} ${parts} failed (${rc})")
  endif()
  file(RENAME "${OUTPUT_DIR}/${rel}.new" "${OUTPUT_DIR}/${rel}")
endforeach()

# Cross-compiles for arm64 (aarch64) Linux on a Debian machine of another
# architecture: Debian's crossbuild-essential-arm64 and the :arm64 builds of the
# libraries (multiarch, in /usr/lib/aarch64-linux-gnu). Programs built here run
# at build time under qemu-user-static (the manual page is made by the program).
#   cmake -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake ...   (tools/package --arch arm64)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# the arm64 libraries only, never the build machine's
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# (libpq-dev:arm64 cannot be installed beside libpq-dev: tools/install-deps unpacks it)
set(ENV{PKG_CONFIG_LIBDIR}
    "/opt/mxpc/arm64-libpq-dev/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
find_program(MXPC_QEMU_AARCH64 qemu-aarch64-static)
if(MXPC_QEMU_AARCH64)
  # the arm64 loader and libraries are found under / (multiarch)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MXPC_QEMU_AARCH64} -L /)
endif()

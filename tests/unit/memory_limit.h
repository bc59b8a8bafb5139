/* For unit tests that read input which may never end (/dev/zero): limits the
 * test's address space, so that a regression fails the test with "out of
 * memory" instead of filling the machine. Not under ASan, which reserves
 * terabytes of address space up front (a regression there is caught by the
 * same test in the release build). */
#ifndef MXPC_TEST_MEMORY_LIMIT_H
#define MXPC_TEST_MEMORY_LIMIT_H

#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static inline void limit_memory(long mib)
{
#if !UNDER_ASAN
    struct rlimit as = {(rlim_t)mib << 20, (rlim_t)mib << 20};
    setrlimit(RLIMIT_AS, &as);
#else
    (void)mib;
#endif
}

#endif

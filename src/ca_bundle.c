/* Finding the system's CA bundle (see include/mxpc/ca_bundle.h). */
#include <stddef.h>
#include <unistd.h>

#include "mxpc/ca_bundle.h"

static const char *const ca_files[] = {
    "/etc/ssl/certs/ca-certificates.crt",                /* Debian, Ubuntu, Alpine, Arch, Gentoo */
    "/etc/pki/tls/certs/ca-bundle.crt",                  /* RHEL, CentOS, Fedora, Amazon Linux */
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", /* RHEL 7+ (the file the above links to) */
    "/etc/ssl/ca-bundle.pem",                            /* openSUSE, SLES */
    "/etc/pki/tls/cacert.pem",                           /* OpenELEC */
    "/etc/ssl/cert.pem",                                 /* Alpine, the BSDs */
    NULL,
};

const char *mxpc_system_ca_file(void)
{
    for (const char *const *f = ca_files; *f; f++) {
        if (access(*f, R_OK) == 0)
            return *f;
    }
    return NULL;
}

/* The system's CA bundle, wherever the distribution keeps it. */
#ifndef MXPC_CA_BUNDLE_H
#define MXPC_CA_BUNDLE_H

/* The first readable CA bundle of the usual places (Debian/Ubuntu/Alpine,
 * RHEL/Fedora, openSUSE, ...), or NULL. The libcurl built into the program
 * only looks where its own distribution keeps the bundle; clients that were
 * given no CA file or directory (nor SSL_CERT_FILE/SSL_CERT_DIR) use this. */
const char *mxpc_system_ca_file(void);

#endif

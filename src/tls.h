/* Trust anchors for TLS: Mozilla's roots compiled in, or SSL_CERT_FILE; decoded once. */
#ifndef KIMICTL_TLS_H
#define KIMICTL_TLS_H
#include <stddef.h>

/* Decode the process's trust anchors (once) and hand them to libcurl.
   Returns 0, or -1 with a message in err. */
int tls_init(char *err, size_t errlen);

#endif

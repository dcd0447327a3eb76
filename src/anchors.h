/* PEM certificates -> BearSSL trust anchors; used at run time (SSL_CERT_FILE) and at
   build time (src/mkanchors.c turns the CA bundle into C). Pure C, no Lua, no curl. */
#ifndef KIMICTL_ANCHORS_H
#define KIMICTL_ANCHORS_H
#include <bearssl.h>
#include <stddef.h>

/* Every CERTIFICATE in the PEM text; others and undecodable ones are skipped.
   *out is malloc'd (and each anchor's buffers); returns how many. */
size_t anchors_from_pem(const unsigned char *pem, size_t len, br_x509_trust_anchor **out);
/* Frees what anchors_from_pem made. */
void anchors_free(br_x509_trust_anchor *ta, size_t n);

#endif

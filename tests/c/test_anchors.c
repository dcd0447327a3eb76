/* The trust anchors compiled into kimictl equal the CA bundle decoded at run time,
   field by field: the build-time conversion loses nothing. */
#include "anchors.h"
#include "fs.h"

#include <stdio.h>
#include <string.h>

extern const br_x509_trust_anchor builtin_anchors[];
extern const size_t builtin_anchors_len;

static int same(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen) {
  return alen == blen && memcmp(a, b, alen) == 0;
}

int main(int argc, char **argv) {
  struct buf pem = { 0 };
  size_t bad = 0;
  br_x509_trust_anchor *ta;
  if (argc != 2 || fs_read(argv[1], &pem) != 0) return fprintf(stderr, "usage: test_anchors BUNDLE\n"), 2;
  size_t n = anchors_from_pem((const unsigned char *)pem.p, pem.len, &ta);
  buf_free(&pem);
  printf("%s - anchors: %zu built in, %zu in the bundle\n",
         n > 100 && n == builtin_anchors_len ? "ok" : "not ok", builtin_anchors_len, n);
  for (size_t i = 0; i < n && i < builtin_anchors_len; i++) {
    const br_x509_trust_anchor *a = &ta[i], *b = &builtin_anchors[i];
    int ok = same(a->dn.data, a->dn.len, b->dn.data, b->dn.len) && a->flags == b->flags &&
             a->pkey.key_type == b->pkey.key_type;
    if (ok && a->pkey.key_type == BR_KEYTYPE_RSA)
      ok = same(a->pkey.key.rsa.n, a->pkey.key.rsa.nlen, b->pkey.key.rsa.n, b->pkey.key.rsa.nlen) &&
           same(a->pkey.key.rsa.e, a->pkey.key.rsa.elen, b->pkey.key.rsa.e, b->pkey.key.rsa.elen);
    else if (ok)
      ok = a->pkey.key.ec.curve == b->pkey.key.ec.curve &&
           same(a->pkey.key.ec.q, a->pkey.key.ec.qlen, b->pkey.key.ec.q, b->pkey.key.ec.qlen);
    bad += !ok;
  }
  printf("%s - anchors: every built-in anchor equals its certificate (%zu differ)\n", bad ? "not ok" : "ok", bad);
  anchors_free(ta, n);
  return bad != 0 || n != builtin_anchors_len;
}

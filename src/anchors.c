/* PEM certificates -> BearSSL trust anchors (subject DN, key, CA flag). */
#include "anchors.h"
#include "buf.h"

#include <stdlib.h>
#include <string.h>

/* BearSSL's decoders write through a callback that cannot fail: remember a failure. */
struct bytes { struct buf b; int oom; };

static void bytes_add(void *ctx, const void *src, size_t n) {
  struct bytes *d = ctx;
  if (!d->oom && buf_add(&d->b, src, n) != 0) d->oom = 1;
}

static void *dup_mem(const void *p, size_t n) {
  void *q = malloc(n ? n : 1);
  if (q) memcpy(q, p, n);
  return q;
}

/* One DER certificate -> one trust anchor (subject DN and public key). */
static int anchor_from_der(br_x509_trust_anchor *ta, const unsigned char *der, size_t len) {
  br_x509_decoder_context dc;
  struct bytes dn = { { 0 }, 0 };
  br_x509_decoder_init(&dc, bytes_add, &dn);
  br_x509_decoder_push(&dc, der, len);
  const br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
  if (!pk || dn.oom) { buf_free(&dn.b); return -1; }
  memset(ta, 0, sizeof *ta);
  ta->dn.data = (unsigned char *)dn.b.p;   /* the anchor owns it from here */
  ta->dn.len = dn.b.len;
  ta->flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
  ta->pkey.key_type = pk->key_type;
  int ok = 0;
  if (pk->key_type == BR_KEYTYPE_RSA) {
    ta->pkey.key.rsa.n = dup_mem(pk->key.rsa.n, pk->key.rsa.nlen);
    ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
    ta->pkey.key.rsa.e = dup_mem(pk->key.rsa.e, pk->key.rsa.elen);
    ta->pkey.key.rsa.elen = pk->key.rsa.elen;
    ok = ta->pkey.key.rsa.n && ta->pkey.key.rsa.e;
    if (!ok) free(ta->pkey.key.rsa.n), free(ta->pkey.key.rsa.e);
  } else if (pk->key_type == BR_KEYTYPE_EC) {
    ta->pkey.key.ec.curve = pk->key.ec.curve;
    ta->pkey.key.ec.q = dup_mem(pk->key.ec.q, pk->key.ec.qlen);
    ta->pkey.key.ec.qlen = pk->key.ec.qlen;
    ok = ta->pkey.key.ec.q != NULL;
  }
  if (!ok) buf_free(&dn.b);
  return ok ? 0 : -1;
}

/* Every CERTIFICATE in a PEM bundle; other objects and undecodable certificates are skipped. */
size_t anchors_from_pem(const unsigned char *pem, size_t len, br_x509_trust_anchor **out) {
  br_pem_decoder_context pc;
  struct bytes der = { { 0 }, 0 };
  br_x509_trust_anchor *tas = NULL;
  size_t n = 0, cap = 0;
  int in_cert = 0;
  static const unsigned char newline = '\n';
  int ended = 0;
  br_pem_decoder_init(&pc);
  while (len > 0 || !ended) {
    if (len == 0) pem = &newline, len = 1, ended = 1;   /* ends a last line with no newline */
    size_t used = br_pem_decoder_push(&pc, pem, len);
    pem += used, len -= used;
    switch (br_pem_decoder_event(&pc)) {
    case BR_PEM_BEGIN_OBJ:
      in_cert = strcmp(br_pem_decoder_name(&pc), "CERTIFICATE") == 0 ||
                strcmp(br_pem_decoder_name(&pc), "X509 CERTIFICATE") == 0;
      buf_reset(&der.b);
      br_pem_decoder_setdest(&pc, in_cert ? bytes_add : NULL, &der);
      break;
    case BR_PEM_END_OBJ:
      if (in_cert && !der.oom) {
        if (n == cap) {
          br_x509_trust_anchor *grown = realloc(tas, (cap = cap ? cap * 2 : 64) * sizeof *tas);
          if (!grown) goto done;
          tas = grown;
        }
        if (anchor_from_der(&tas[n], (const unsigned char *)der.b.p, der.b.len) == 0) n++;
      }
      in_cert = 0;
      break;
    case BR_PEM_ERROR:
      goto done;
    }
  }
done:
  buf_free(&der.b);
  *out = tas;
  return n;
}

void anchors_free(br_x509_trust_anchor *ta, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(ta[i].dn.data);
    if (ta[i].pkey.key_type == BR_KEYTYPE_RSA) free(ta[i].pkey.key.rsa.n), free(ta[i].pkey.key.rsa.e);
    else free(ta[i].pkey.key.ec.q);
  }
  free(ta);
}

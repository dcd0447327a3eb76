/* Files compiled into the binary: the Lua sources. */
#ifndef KIMICTL_EMBED_H
#define KIMICTL_EMBED_H
#include <stddef.h>

struct embedded_file {
  const char *name;            /* relative to lua/, e.g. "providers/openai.lua" */
  const unsigned char *data;
  size_t len;
};

extern const struct embedded_file embedded_lua[];  /* ends with a NULL name */

#endif

/* Lua's allocator: small blocks are recycled through free lists by size. */
#ifndef KIMICTL_ALLOC_H
#define KIMICTL_ALLOC_H

#include <stddef.h>

#define ALLOC_GRAIN 16
#define ALLOC_SMALL 2048                /* blocks up to this size are recycled */
#ifndef ALLOC_CACHE_MAX
#define ALLOC_CACHE_MAX (256 * 1024)   /* bytes kept in the lists at most (0 for sanitizers) */
#endif

struct free_block;

struct alloc_pool {
  struct free_block *list[ALLOC_SMALL / ALLOC_GRAIN + 1];   /* by size class, 1.. */
  size_t cached;                                            /* bytes in the lists */
};

/* A lua_Alloc: lua_newstate(alloc_lua, &pool). */
void *alloc_lua(void *pool, void *ptr, size_t osize, size_t nsize);

/* Gives the cached blocks back to malloc (after lua_close). */
void alloc_drain(struct alloc_pool *pool);

#endif

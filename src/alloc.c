/* Lua's allocator. A request makes and drops a few hundred small tables, strings and
   closures; a free list hands such a block back in a few instructions where malloc and
   free take a few hundred. Blocks up to ALLOC_SMALL bytes are rounded up to a multiple of
   ALLOC_GRAIN and, when freed, kept in the list of their size while the lists hold less
   than ALLOC_CACHE_MAX bytes; the rest goes straight to malloc, so a burst does not keep
   its memory. Every block is an ordinary malloc block: realloc and free work on any.
   ALLOC_SMALL reaches 2 KiB because a request's coroutine stack, its tables' parts and its
   bodies are such blocks: given back to musl's malloc, the page they shared was unmapped
   and mapped again on every request (an mmap, an munmap and a page fault each time). */
#include "alloc.h"

#include <stdlib.h>

struct free_block { struct free_block *next; };

/* The size class of n bytes: 1.. for recycled sizes, 0 for none (0 bytes, or large). */
static size_t class_of(size_t n) {
  return n == 0 || n > ALLOC_SMALL ? 0 : (n + ALLOC_GRAIN - 1) / ALLOC_GRAIN;
}

static void give_back(struct alloc_pool *pool, void *ptr, size_t size) {
  size_t c = class_of(size);
  if (c && pool->cached + c * ALLOC_GRAIN <= ALLOC_CACHE_MAX) {
    struct free_block *b = ptr;
    b->next = pool->list[c];
    pool->list[c] = b;
    pool->cached += c * ALLOC_GRAIN;
    return;
  }
  free(ptr);
}

/* lua_Alloc: osize is the block's size when ptr is not NULL (Lua's contract), and a
   recycled block has at least its class's size, so a change within a class keeps it. */
void *alloc_lua(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct alloc_pool *pool = ud;
  size_t nc = class_of(nsize);
  if (nsize == 0) {
    if (ptr) give_back(pool, ptr, osize);
    return NULL;
  }
  if (!ptr) {
    struct free_block *b = nc ? pool->list[nc] : NULL;
    if (!b) return malloc(nc ? nc * ALLOC_GRAIN : nsize);
    pool->list[nc] = b->next;
    pool->cached -= nc * ALLOC_GRAIN;
    return b;
  }
  if (nc && nc == class_of(osize)) return ptr;
  return realloc(ptr, nc ? nc * ALLOC_GRAIN : nsize);
}

void alloc_drain(struct alloc_pool *pool) {
  for (size_t c = 1; c <= ALLOC_SMALL / ALLOC_GRAIN; c++) {
    while (pool->list[c]) {
      struct free_block *b = pool->list[c];
      pool->list[c] = b->next;
      free(b);
    }
  }
  pool->cached = 0;
}

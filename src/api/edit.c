/* core.edit: line editing for the chat REPL, on libedit (BSD), with history kept in a file.
   Ctrl-C is read as a key (ISIG off while a line is edited), so it clears the line instead
   of reaching the event loop's SIGINT watcher; a terminal resize (SIGWINCH) is noticed
   while waiting for a key, and the next redraw uses the new width. Input that is already
   waiting when Enter is read (a paste) joins the same text, so a pasted block is one message. */
#include "api.h"

#include <errno.h>
#include <histedit.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

struct editor {
  EditLine *el;
  History *hist;
  char *history_path;   /* NULL: history kept for this run only */
  const char *prompt;   /* valid during read */
  int interrupted;
};

static volatile sig_atomic_t resized;
static void on_winch(int sig) { (void)sig; resized = 1; }

static char *prompt_of(EditLine *el) {
  struct editor *ed = NULL;
  el_get(el, EL_CLIENTDATA, &ed);
  return (char *)(ed && ed->prompt ? ed->prompt : "");
}

/* One character for libedit: bytes from stdin decoded as UTF-8 (the locale's), 1; 0 at end
   of input; -1 on an error. A resize while waiting redraws at the new width. */
static int get_char(EditLine *el, wchar_t *out) {
  char bytes[MB_LEN_MAX];
  size_t n = 0;
  mbstate_t st;
  for (;;) {
    ssize_t r = read(STDIN_FILENO, bytes + n, 1);
    if (r < 0 && errno == EINTR) {
      if (resized) {
        resized = 0;
        el_resize(el);
      }
      continue;
    }
    if (r < 0) return -1;
    if (r == 0) return 0;
    n++;
    memset(&st, 0, sizeof st);
    size_t k = mbrtowc(out, bytes, n, &st);
    if (k == (size_t)-2 && n < sizeof bytes) continue;   /* more bytes of this character */
    if (k == (size_t)-1 || k == (size_t)-2) *out = (wchar_t)(unsigned char)bytes[0];   /* not UTF-8: as is */
    return 1;
  }
}

/* Ctrl-C: the line is dropped and read says so. */
static unsigned char on_interrupt(EditLine *el, int ch) {
  (void)ch;
  struct editor *ed = NULL;
  el_get(el, EL_CLIENTDATA, &ed);
  if (ed) ed->interrupted = 1;
  return CC_EOF;
}

static int editor_close(lua_State *L) {
  struct editor *ed = luaL_checkudata(L, 1, MT_EDITOR);
  if (ed->el) el_end(ed->el);   /* puts the terminal back */
  if (ed->hist) history_end(ed->hist);
  free(ed->history_path);
  ed->el = NULL, ed->hist = NULL, ed->history_path = NULL;
  return 0;
}

/* core.edit.open{history = path (optional), size = 1000} -> editor | nil, err
   stdin and stdout must be a terminal. */
static int l_edit_open(lua_State *L) {
  static const char *const options[] = { "history", "size", NULL };
  api_check_options(L, 1, options);
  lua_Integer size = api_opt_int(L, 1, "size", 1000, 1);
  lua_getfield(L, 1, "history");
  const char *path = luaL_optstring(L, -1, NULL);
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
    lua_pushnil(L);
    lua_pushliteral(L, "line editing needs a terminal on stdin and stdout");
    return 2;
  }
  if (!setlocale(LC_CTYPE, "") || MB_CUR_MAX == 1) setlocale(LC_CTYPE, "C.UTF-8");
  struct editor *ed = lua_newuserdatauv(L, sizeof *ed, 0);
  memset(ed, 0, sizeof *ed);
  luaL_setmetatable(L, MT_EDITOR);
  if (path && !(ed->history_path = strdup(path))) return luaL_error(L, "out of memory");
  HistEvent ev;
  if (!(ed->hist = history_init()) || !(ed->el = el_init("kimictl", stdin, stdout, stderr))) {
    editor_close(L);
    return api_fail(L, "line editing");
  }
  history(ed->hist, &ev, H_SETSIZE, (int)(size > INT_MAX ? INT_MAX : size));
  history(ed->hist, &ev, H_SETUNIQUE, 1);
  if (ed->history_path) history(ed->hist, &ev, H_LOAD, ed->history_path);   /* none yet is fine */
  el_set(ed->el, EL_CLIENTDATA, ed);
  el_set(ed->el, EL_EDITOR, "emacs");
  el_set(ed->el, EL_HIST, history, ed->hist);
  el_set(ed->el, EL_PROMPT, prompt_of);
  el_set(ed->el, EL_GETCFN, get_char);
  el_set(ed->el, EL_SETTY, "-d", "-isig", NULL);
  /* The wide call keeps our strings; the narrow one copies them and never frees the copies. */
  el_wset(ed->el, EL_ADDFN, L"kimictl-interrupt", L"drop the line", on_interrupt);
  el_set(ed->el, EL_BIND, "^C", "kimictl-interrupt", NULL);
  el_source(ed->el, NULL);   /* the user's ~/.editrc, as every libedit program reads it */
  return 1;
}

/* Is more input already waiting (the rest of a paste)? */
static int input_waiting(void) {
  struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
  return poll(&p, 1, 15) == 1 && (p.revents & POLLIN);
}

/* ed:read(prompt[, more_prompt]) -> text | nil (end of input) | false (Ctrl-C)
   Lines pasted together come back as one text, joined by line ends. */
static int l_edit_read(lua_State *L) {
  struct editor *ed = luaL_checkudata(L, 1, MT_EDITOR);
  const char *prompt = luaL_checkstring(L, 2);
  const char *more = luaL_optstring(L, 3, prompt);
  luaL_argcheck(L, ed->el != NULL, 1, "the editor is closed");
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_winch;   /* no SA_RESTART: a resize interrupts the wait for a key */
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGWINCH, &sa, &old) != 0) return api_fail(L, "SIGWINCH");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int lines = 0, status = 1;
  ed->interrupted = 0;
  for (;;) {
    ed->prompt = lines ? more : prompt;
    el_resize(ed->el);
    int count = 0;
    const char *line = el_gets(ed->el, &count);
    if (ed->interrupted) { status = 0; break; }
    if (!line || count <= 0) { status = lines ? 1 : -1; break; }
    size_t len = (size_t)count;
    if (lines) luaL_addchar(&b, '\n');
    luaL_addlstring(&b, line, len && line[len - 1] == '\n' ? len - 1 : len);
    lines++;
    if (!input_waiting()) break;
  }
  ed->prompt = NULL;
  sigaction(SIGWINCH, &old, NULL);
  if (status <= 0) fputs(status == 0 ? "^C\n" : "\n", stdout), fflush(stdout);
  if (status == 1) luaL_pushresult(&b);
  else if (status == 0) lua_pushboolean(L, 0);
  else lua_pushnil(L);
  return 1;
}

/* ed:add(text): into the history, and its file saved (write to a temporary, then rename). */
static int l_edit_add(lua_State *L) {
  struct editor *ed = luaL_checkudata(L, 1, MT_EDITOR);
  const char *text = luaL_checkstring(L, 2);
  luaL_argcheck(L, ed->hist != NULL, 1, "the editor is closed");
  HistEvent ev;
  history(ed->hist, &ev, H_ENTER, text);
  if (!ed->history_path) return lua_pushboolean(L, 1), 1;
  const char *tmp = lua_pushfstring(L, "%s.tmp", ed->history_path);
  if (history(ed->hist, &ev, H_SAVE, tmp) < 0 || chmod(tmp, 0600) != 0 || rename(tmp, ed->history_path) != 0) {
    unlink(tmp);
    return api_fail(L, ed->history_path);
  }
  lua_pushboolean(L, 1);
  return 1;
}

int luaopen_core_edit(lua_State *L) {
  static const luaL_Reg funcs[] = { { "open", l_edit_open }, { NULL, NULL } };
  static const luaL_Reg methods[] = {
    { "read", l_edit_read }, { "add", l_edit_add }, { "close", editor_close },
    { "__gc", editor_close }, { "__close", editor_close }, { NULL, NULL }
  };
  api_class(L, MT_EDITOR, methods);
  luaL_newlib(L, funcs);
  return 1;
}

/* core.log: leveled, redacted logging for Lua (KIMICTL_LOG=error|warn|info|debug). */
#include "api.h"
#include "log.h"

static int log_at(lua_State *L, int level) {
  size_t len;
  const char *msg = luaL_checklstring(L, 1, &len);
  log_write(level, msg, len);
  return 0;
}

/* core.log.error(msg), .warn(msg), .info(msg), .debug(msg) */
static int l_log_error(lua_State *L) { return log_at(L, LOG_ERROR); }
static int l_log_warn(lua_State *L) { return log_at(L, LOG_WARN); }
static int l_log_info(lua_State *L) { return log_at(L, LOG_INFO); }
static int l_log_debug(lua_State *L) { return log_at(L, LOG_DEBUG); }

/* core.log.level() -> "error" | "warn" | "info" | "debug" */
static int l_log_level(lua_State *L) {
  lua_pushstring(L, log_level_name(log_level()));
  return 1;
}

/* core.log.redact(s) -> s with secret values replaced by "[redacted]" */
static int l_log_redact(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  struct buf *clean = api_box(L, 0);
  if (log_redact(s, len, clean) != 0) return luaL_error(L, "cannot redact a message: out of memory");
  api_box_push(L, clean);
  return 1;
}

int luaopen_core_log(lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "error", l_log_error }, { "warn", l_log_warn }, { "info", l_log_info },
    { "debug", l_log_debug }, { "level", l_log_level }, { "redact", l_log_redact },
    { NULL, NULL }
  };
  luaL_newlib(L, funcs);
  return 1;
}

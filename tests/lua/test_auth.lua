-- Credential formats and the refresh rule, without a server.
local core = require "core"
local store = require "auth.store"
local tokens = require "auth.tokens"

local cred = { access_token = "a", refresh_token = "r", expires_at = 1732480000.25, scope = "s",
               token_type = "Bearer", expires_in = 900 }

return {
  ["Kimi CLI format: compact, float times, six fields in order"] = function()
    local text = store.encode({ kind = "kimi-cli" }, cred)
    assert(text == '{"access_token":"a","refresh_token":"r","expires_at":1732480000.25,' ..
      '"scope":"s","token_type":"Bearer","expires_in":900.0}', text)
    local whole = store.encode({ kind = "kimi-cli" }, { access_token = "a", refresh_token = "r",
      expires_at = 1732480000.0, scope = "", token_type = "Bearer", expires_in = 900.0 })
    assert(whole:find('"expires_at":1732480000.0,', 1, true), whole)
  end,
  ["Kimi CLI format keeps a float's every digit"] = function()
    local t = 1732480123.456789
    local doc = core.json.decode(store.encode({ kind = "kimi-cli" }, { access_token = "a", refresh_token = "r",
      expires_at = t, scope = "", token_type = "Bearer", expires_in = 900.0 }))
    assert(doc.expires_at == t, doc.expires_at)
  end,
  ["kimi-code format: indented, integer expires_at, final newline"] = function()
    local text = store.encode({ kind = "kimi-code" }, cred)
    assert(text:sub(1, 20) == '{\n  "access_token": ', text)
    assert(text:find('"expires_at": 1732480000,', 1, true) and text:sub(-2) == "}\n", text)
  end,
  ["refresh rule: max(300 s, half the lifetime) before expiry"] = function()
    local now = 1000000
    assert(tokens.needs_refresh({ expires_at = 0, expires_in = 900 }, now))
    assert(tokens.needs_refresh({ expires_at = now + 449, expires_in = 900 }, now))
    assert(not tokens.needs_refresh({ expires_at = now + 451, expires_in = 900 }, now))
    assert(tokens.needs_refresh({ expires_at = now + 299, expires_in = 60 }, now))
    assert(not tokens.needs_refresh({ expires_at = now + 301, expires_in = 60 }, now))
  end,
  ["reading a damaged file names it and says what to do"] = function()
    local d = os.tmpname()
    os.remove(d)
    assert(core.fs.mkdir(d))
    local s = { path = d .. "/c.json" }
    assert(core.fs.write_atomic(s.path, '{"access_token":"a"}'))
    local c, err, code = store.read(s)
    assert(c == nil and code == "corrupt" and err:find(d .. "/c.json", 1, true) and err:find("kimictl login"), err)
    assert(core.fs.read(s.path) == '{"access_token":"a"}')
    c, err, code = store.read({ path = d .. "/none.json" })
    assert(c == nil and code == "missing", err)
  end,
}

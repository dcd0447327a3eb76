-- The credential-file loader: any text is a login or a "damaged" message (never an error),
-- and a login written back in either format reads back the same.
local store = require "auth.store"

return function(s)
  local cred, msg, code = store.parse("/fuzz/kimi-code.json", s)
  if not cred then
    assert(type(msg) == "string" and code == "corrupt", "unexpected refusal: " .. tostring(code))
    return
  end
  for _, kind in ipairs({ "kimi-cli", "kimi-code" }) do
    local back = assert(store.parse("/fuzz/kimi-code.json", store.encode({ kind = kind }, cred)))
    for k, v in pairs(cred) do
      local same = v == back[k] or (k == "expires_at" and kind == "kimi-code" and back[k] == math.floor(v))
      assert(same, ("%s: %s changed in the %s format"):format(k, tostring(v), kind))
    end
  end
end

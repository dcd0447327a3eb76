-- Provider loading, settings and error explanations (no network).
local provider = require "provider"
local core = require "core"

return {
  ["openai provider loads with honest defaults"] = function()
    local p = assert(provider.load("openai"))
    assert(p.name == "openai" and p.auth == "api_key")
    assert(p.headers["User-Agent"] == "kimictl/" .. core.version)
  end,
  ["unknown and malformed names are refused"] = function()
    local p, err = provider.load("no_such_provider")
    assert(p == nil and err:find("unknown provider"))
    p, err = provider.load("../etc")
    assert(p == nil and err:find("bad provider name"))
  end,
  ["headers: functions are called, false drops, credentials and extras win"] = function()
    local p = { name = "x", headers = { A = "1", B = function() return "2" end, C = false } }
    local h = provider.headers(p, { authorization = "Bearer t" }, { A = "override" })
    assert(h.A == "override" and h.B == "2" and h.C == nil and h.Authorization == "Bearer t")
  end,
  ["explain reads an OpenAI error body"] = function()
    local p = { name = "svc", hints = { [401] = "check the key" } }
    local msg, hint = provider.explain(p, { status = 401,
      body = '{"error":{"message":"Bad key","type":"invalid_request_error"}}' })
    assert(msg == "svc answered HTTP 401: Bad key (invalid_request_error)", msg)
    assert(hint == "check the key")
    msg, hint = provider.explain(p, { status = 502, body = "<html>bad gateway</html>" })
    assert(msg:find("HTTP 502: <html>bad gateway") and hint:find("try again"))
  end,
  ["base_url trims the slash and the environment wins"] = function()
    local p = { base_url = "http://a/v1/", base_url_env = { "KIMICTL_TEST_UNSET_VAR" } }
    assert(provider.base_url(p) == "http://a/v1")
  end,
}

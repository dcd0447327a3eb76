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
  ["headers: key_header carries the bare key instead of Authorization (Anthropic's x-api-key)"] = function()
    local p = { name = "x", key_header = "x-api-key", headers = { ["anthropic-version"] = "2023-06-01" } }
    local h = provider.headers(p, { authorization = "Bearer k1", token = "k1" })
    assert(h["x-api-key"] == "k1" and h.Authorization == nil and h["anthropic-version"] == "2023-06-01")
    assert(provider.headers(p, {})["x-api-key"] == nil, "no credentials, no header")
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
  ["base_url trims the slash, the environment wins, then the region"] = function()
    -- tests/run.sh sets KIMICTL_TEST_ENV_URL for this suite
    assert(os.getenv("KIMICTL_TEST_ENV_URL") == "http://from-env/v1/", "run through tests/run.sh")
    local p = { base_url = "http://a/v1/", base_url_env = { "KIMICTL_TEST_UNSET_VAR" },
                regions = { eu = { api = "http://eu/v1" } } }
    assert(provider.base_url(p) == "http://a/v1")
    assert(provider.base_url(p, "eu") == "http://eu/v1")
    assert(provider.base_url(p, "nowhere") == "http://a/v1")
    p.base_url_env = { "KIMICTL_TEST_UNSET_VAR", "KIMICTL_TEST_ENV_URL" }
    assert(provider.base_url(p) == "http://from-env/v1")
    assert(provider.base_url(p, "eu") == "http://from-env/v1")
  end,
  ["explain: generic causes, the provider's own, and a refused key from the environment"] = function()
    local p = { name = "svc", auth = "api_key", hints = { [401] = "check the key" } }
    local _, hint, cause = provider.explain(p, { status = 401, body = "", source = { kind = "env", where = "$SVC_KEY" } })
    assert(cause == "auth_expired" and hint:find("$SVC_KEY was refused", 1, true) and hint:find("unset it"), hint)
    _, hint = provider.explain(p, { status = 401, body = "", source = { kind = "api_key", where = "x" } })
    assert(hint == "check the key")
    assert(select(3, provider.explain(p, { status = 503, body = "" })) == "server_error")
    assert(select(3, provider.explain(p, { status = 418, body = "" })) == "http_418")
    local kimi = assert(provider.load("kimi"))
    local function cause_of(status, err)
      return select(3, provider.explain(kimi, { status = status, body = core.json.encode({ error = err }) }))
    end
    assert(cause_of(403, { type = "access_terminated_error", message = "only for Coding Agents" }) == "access_terminated")
    assert(cause_of(403, { type = "x", message = "You have reached your weekly usage limit" }) == "quota_exhausted")
    assert(cause_of(429, { message = "Insufficient balance" }) == "insufficient_balance")
    assert(cause_of(429, { message = "Rate limit reached" }) == "rate_limited")
    assert(cause_of(402, { message = "membership expired" }) == "membership_expired")
  end,
}

-- The core library as Lua sees it: json, fs, log, http argument checks.
local core = require "core"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(core.fs.mkdir(d, "0700"))
  return d
end

return {
  ["json keeps integers and floats apart"] = function()
    assert(math.type(core.json.decode("3")) == "integer")
    assert(math.type(core.json.decode("3.5")) == "float")
    assert(core.json.encode({ n = 9007199254740993 }) == '{"n":9007199254740993}')
  end,
  ["json decode of bad input returns nil and a message"] = function()
    local v, err = core.json.decode("{not json")
    assert(v == nil and err:match("^invalid JSON"), err)
    v, err = core.json.decode("NaN")
    assert(v == nil and err, "NaN accepted")
  end,
  ["fs writes atomically with the mode asked"] = function()
    local d = tmpdir()
    local f = d .. "/creds.json"
    assert(core.fs.write_atomic(f, "one", "0600"))
    assert(core.fs.write_atomic(f, "two", "0600"))
    assert(core.fs.read(f) == "two")
    assert(core.fs.stat(f).mode == tonumber("600", 8))
    assert(core.fs.stat(d).mode == tonumber("700", 8))
    assert(core.fs.remove(f))
  end,
  ["fs mkdir makes parents and reports a file in the way"] = function()
    local d = tmpdir()
    assert(core.fs.mkdir(d .. "/a/b/c", "0700"))
    assert(core.fs.stat(d .. "/a/b/c").type == "dir")
    assert(core.fs.write_atomic(d .. "/file", "x"))
    local ok, err, code = core.fs.mkdir(d .. "/file/sub")
    assert(not ok and err:find(d .. "/file/sub", 1, true) and code == "ENOTDIR", tostring(err))
  end,
  ["fs read of a missing file says ENOENT"] = function()
    local data, err, code = core.fs.read("/nonexistent/kimictl-test")
    assert(data == nil and err:find("No such file") and code == "ENOENT")
  end,
  ["fs lock times out while another holder has it"] = function()
    local d = tmpdir()
    local a = assert(core.fs.lock(d .. "/x.lock", 100))
    local t0 = core.proc.clock_ms()
    local b, err, code = core.fs.lock(d .. "/x.lock", 150)
    assert(b == nil and code == "ETIMEDOUT", tostring(err))
    assert(core.proc.clock_ms() - t0 >= 150)
    a:unlock()
    local c = assert(core.fs.lock(d .. "/x.lock", 100))
    c:unlock()
    do
      local held <close> = assert(core.fs.lock(d .. "/y.lock", 100))
    end
    assert(core.fs.lock(d .. "/y.lock", 0), "to-be-closed lock was not released")
  end,
  ["log redacts secrets in headers, JSON and forms"] = function()
    local r = core.log.redact
    assert(r("Authorization: Bearer abc.def") == "Authorization: Bearer [redacted]")
    assert(r('{"access_token":"xyz","refresh_token": "rrr","expires_in":900}') ==
      '{"access_token":"[redacted]","refresh_token": "[redacted]","expires_in":900}')
    assert(r("grant_type=refresh_token&refresh_token=abc&client_id=1") ==
      "grant_type=refresh_token&refresh_token=[redacted]&client_id=1")
    assert(r("x-api-key: k123") == "x-api-key: [redacted]")
    assert(r('"max_tokens": 5, "prompt_tokens": 3') == '"max_tokens": 5, "prompt_tokens": 3')
  end,
  ["log redacts camelCase, escaped JSON, other schemes, cookies and quoted spaces"] = function()
    local r = core.log.redact
    assert(r('{"accessToken":"eyJa","refreshToken":"r1"}') == '{"accessToken":"[redacted]","refreshToken":"[redacted]"}')
    assert(r('{\\"refresh_token\\":\\"eyJ1\\"}') == '{\\"refresh_token\\":\\"[redacted]\\"}')
    assert(r("Authorization: Token sk-abc") == "Authorization: Token [redacted]")
    assert(r("Cookie: a=b; c=d") == "Cookie: [redacted]")
    assert(r('"api_key": "sk 123", "x": 1') == '"api_key": "[redacted]", "x": 1')
  end,
  ["http rejects unknown options and bad headers"] = function()
    local ok, err = pcall(core.http.request, { url = "http://127.0.0.1:9/", bogus = 1 })
    assert(not ok and err:find("unknown option 'bogus'"), err)
    ok, err = pcall(core.http.request, { url = "http://127.0.0.1:9/", headers = { ["X"] = "a\r\nB: c" } })
    assert(not ok and err:find("bad header"), err)
    ok, err = pcall(core.http.request, { url = "http://127.0.0.1:9/", headers = { "Authorization: x" } })
    assert(not ok and err:find("not a list"), err)
  end,
  ["http failures are nil, message, kind"] = function()
    local res, err, kind = core.http.request { url = "http://127.0.0.1:9/", connect_timeout_ms = 2000 }
    assert(res == nil and kind == "connect" and err:find("127.0.0.1:9"), tostring(err))
  end,
  ["version is semver"] = function()
    assert(core.version:match("^%d+%.%d+%.%d+"))
  end,
}

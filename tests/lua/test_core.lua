-- The core library as Lua sees it: json, fs, lock, hash, log, http argument checks, proc.
-- (core.http against a server, and whole processes, are in tests/e2e/test_http.py and test_proc.py.)
local core = require "core"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(core.fs.mkdir(d, "0700"))
  return d
end

-- A Lua script for `kimictl lua`, in a fresh directory; returns its path and the directory.
local function script(code)
  local d = tmpdir()
  assert(core.fs.write_atomic(d .. "/child.lua", code))
  return d .. "/child.lua", d
end

-- The session this process belongs to, from /proc (Linux); nil elsewhere.
local SESSION = "%) %S+ %d+ %d+ (%d+)"   -- /proc/PID/stat: (comm) state ppid pgrp session
local function my_session()
  local f = io.open("/proc/self/stat")
  if not f then return nil end
  local session = f:read("a"):match(SESSION)
  f:close()
  return session
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
  ["fs version changes when the file is rewritten or chmod-ed, and names a missing one"] = function()
    local d = tmpdir()
    local f = d .. "/profiles.json"
    assert(core.fs.version(f) == "!ENOENT", core.fs.version(f))
    assert(core.fs.write_atomic(f, "one", "0600"))
    local v1 = core.fs.version(f)
    assert(v1 == core.fs.version(f), "the same file gave two versions")
    assert(core.fs.write_atomic(f, "two", "0600"))   -- same size, replaced
    local v2 = core.fs.version(f)
    assert(v2 ~= v1, "a replaced file kept its version")
    assert(core.fs.chmod(f, "0644"))
    assert(core.fs.version(f) ~= v2, "a chmod-ed file kept its version")
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
  ["lock: flock times out while another holder has it, and frees on release"] = function()
    local d = tmpdir()
    local a = assert(core.lock.take(d .. "/x.lock", "flock", 100))
    local t0 = core.proc.clock_ms()
    local b, err, code = core.lock.take(d .. "/x.lock", "flock", 150)
    assert(b == nil and code == "ETIMEDOUT" and err:find(d .. "/x.lock", 1, true), tostring(err))
    assert(core.proc.clock_ms() - t0 >= 150)
    a:release()
    a:release()   -- a second release does nothing
    local c = assert(core.lock.take(d .. "/x.lock", "flock", 100))
    c:release()
  end,
  ["lock: <close> releases, for both kinds"] = function()
    local d = tmpdir()
    for _, kind in ipairs({ "flock", "dir" }) do
      local path = d .. "/y-" .. kind .. ".lock"
      do
        local held <close> = assert(core.lock.take(path, kind, 100))
        assert(core.lock.take(path, kind, 0) == nil, kind .. " lock taken twice")
      end
      local again = assert(core.lock.take(path, kind, 0), kind .. ": to-be-closed lock was not released")
      again:release()
    end
  end,
  ["lock: something other than a directory at a dir lock's path is an error at once"] = function()
    local d = tmpdir()
    local dangling = d .. "/dangling.lock"
    assert(os.execute(("ln -s %s/nowhere %s"):format(d, dangling)))
    assert(core.fs.write_atomic(d .. "/file.lock", ""))
    for _, path in ipairs({ dangling, d .. "/file.lock" }) do
      local t0 = core.proc.clock_ms()
      local l, err, code = core.lock.take(path, "dir", 5000)
      assert(l == nil and code == "ENOTDIR", tostring(err))
      assert(err:find(path, 1, true) and err:find("not a directory") and err:find("remove it"), err)
      assert(core.proc.clock_ms() - t0 < 2000, "waited for something that never goes away")
    end
  end,
  ["lock: a negative timeout or an unknown kind is an argument error"] = function()
    local ok, err = pcall(core.lock.take, "/tmp/x.lock", "flock", -1)
    assert(not ok and err:find("timeout_ms must be a non%-negative integer"), err)
    ok, err = pcall(core.lock.take, "/tmp/x.lock", "bogus", 1)
    assert(not ok and err:find("invalid option 'bogus'"), err)
  end,
  ["hash: sha256 of abc is the known digest"] = function()
    assert(core.hash.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert(core.hash.sha256("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  end,
  ["core.token and core.fs.lock are gone"] = function()
    assert(core.token == nil and core.fs.lock == nil)
    assert(not pcall(require, "core.token"))
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
  ["log keeps error causes: a URL path or a word 'token' is not a key"] = function()
    local r = core.log.redact
    for _, msg in ipairs({
      "could not connect to http://127.0.0.1:5/api/oauth/token: connection refused (is the server running?)",
      "TLS certificate verification failed for https://localhost:5/api/oauth/token: chain could not be linked to a trust anchor",
      "the connection to http://127.0.0.1:5/token was closed before the answer was complete: Connection refused",
      "token: connection refused",
    }) do
      assert(r(msg) == msg, r(msg))
    end
  end,
  ["log redacts JSON, forms, curl's header lines and cookies"] = function()
    local r = core.log.redact
    local cases = {
      { '{"token":"abc"}', '{"token":"[redacted]"}' },
      { "refresh_token=abc&x=1", "refresh_token=[redacted]&x=1" },
      { "> Authorization: Bearer abc", "> Authorization: Bearer [redacted]" },
      { "Cookie: a=b", "Cookie: [redacted]" },
      { '"api_key": "sk 123"', '"api_key": "[redacted]"' },
      { "sent Bearer abc.def to the server", "sent Bearer [redacted] to the server" },
      { "x\n< Set-Cookie: s=1; Path=/\ny", "x\n< Set-Cookie: [redacted]\ny" },
      { '{"device_code":"dc","user_code":"ABCD"}', '{"device_code":"[redacted]","user_code":"ABCD"}' },
      { "client_secret=s3&password=p&token=t", "client_secret=[redacted]&password=[redacted]&token=[redacted]" },
    }
    for _, c in ipairs(cases) do
      assert(r(c[1]) == c[2], ("%q became %q"):format(c[1], r(c[1])))
    end
  end,
  ["http rejects unknown options and bad headers"] = function()
    local ok, err = pcall(core.http.request, { url = "http://127.0.0.1:9/", bogus = 1 })
    assert(not ok and err:find("unknown option 'bogus'"), err)
    ok, err = pcall(core.http.request, { url = "http://127.0.0.1:9/", headers = { ["X"] = "a\r\nB: c" } })
    assert(not ok and err:find("bad header"), err)
    ok, err = pcall(core.http.request, { url = "http://127.0.0.1:9/", headers = { "Authorization: x" } })
    assert(not ok and err:find("not a list"), err)
    ok, err = pcall(core.http.request, { url = "http://127.0.0.1:9/", headers = { ["X"] = "a\0b" } })
    assert(not ok and err:find("without CR, LF or NUL"), err)
    for _, h in ipairs({ { ["X:Y"] = "v" }, { ["X\0"] = "v" }, { ["X"] = "a\nb" }, { ["X"] = "\r" } }) do
      ok, err = pcall(core.http.request, { url = "http://127.0.0.1:9/", headers = h })
      assert(not ok and err:find("bad header"), tostring(err))
    end
    for _, name in ipairs({ "meth", "methods", "u", "Url" }) do   -- near misses of real options
      ok, err = pcall(core.http.request, { url = "http://127.0.0.1:9/", [name] = "x" })
      assert(not ok and err:find("unknown option '" .. name .. "'", 1, true), tostring(err))
    end
  end,
  ["http: invalid option values are argument errors naming the option"] = function()
    local url = "http://127.0.0.1:9/"
    local cases = {
      { { timeout_ms = -5 }, "timeout_ms must be a non%-negative integer" },
      { { connect_timeout_ms = -1 }, "connect_timeout_ms must be a non%-negative integer" },
      { { idle_timeout_ms = 1.5 }, "idle_timeout_ms must be a non%-negative integer" },
      { { timeout_ms = "100" }, "timeout_ms must be a non%-negative integer" },
      { { max_body = 0 }, "max_body must be a positive integer" },
      { { max_body = -1 }, "max_body must be a positive integer" },
    }
    for _, c in ipairs(cases) do
      local opts = c[1]
      opts.url = url
      local ok, err = pcall(core.http.request, opts)
      assert(not ok and err:find(c[2]) and err:find("bad argument"), tostring(err))
    end
  end,
  ["proc: spawn_detached runs kimictl itself and reports its output and exit status"] = function()
    local exe = assert(core.proc.exe())
    assert(exe:sub(1, 1) == "/" and core.fs.stat(exe).type == "file", exe)
    local child = script('print("hello from the child") return 3')
    local res, err, code = core.proc.spawn_detached { argv = { exe, "lua", child }, timeout_ms = 20000 }
    assert(res, tostring(err) .. " " .. tostring(code))
    assert(res.output == "hello from the child\n" and res.status == 3 and res.signal == nil, res.output)
  end,
  ["proc: a child that outlives the deadline is ETIMEDOUT and keeps running"] = function()
    local child, d = script([[
      local core = require "core"
      core.proc.sleep(2000)
      assert(core.fs.write_atomic(..., "done"))
    ]])
    local marker = d .. "/marker"
    local exe = assert(core.proc.exe())
    local res, err, code = core.proc.spawn_detached { argv = { exe, "lua", child, marker }, timeout_ms = 100 }
    assert(res == nil and code == "ETIMEDOUT" and err == "the child process did not finish within 100 ms", tostring(err))
    assert(not core.fs.stat(marker), "the child finished before the deadline: the test proves nothing")
    local deadline = core.proc.clock_ms() + 20000
    while not core.fs.stat(marker) and core.proc.clock_ms() < deadline do core.proc.sleep(50) end
    assert(core.fs.read(marker) == "done", "the child did not live on after the deadline")
  end,
  ["proc: the child leads a session of its own (Linux)"] = function()
    local mine = my_session()
    if not mine then return end   -- no /proc: nothing to compare
    local child = script(([[
      local core = require "core"
      local f = assert(io.open("/proc/self/stat"))
      local session = f:read("a"):match(%q)   -- before setsid(): the spawn made it
      print(core.proc.pid(), core.proc.setsid(), session)
    ]]):format(SESSION))
    local res, err = core.proc.spawn_detached { argv = { assert(core.proc.exe()), "lua", child }, timeout_ms = 20000 }
    assert(res and res.status == 0, tostring(err) .. " " .. tostring(res and res.output))
    local pid, ok, session = res.output:match("^(%d+)\t(%S+)\t(%d+)")
    assert(pid and ok == "true" and session == pid and session ~= mine, res.output)
  end,
  ["proc: spawn_detached reports a program that cannot start, and checks its options"] = function()
    local res, err, code = core.proc.spawn_detached { argv = { "/nonexistent/kimictl-child" }, timeout_ms = 1000 }
    assert(res == nil and code == "ENOENT" and err:find("/nonexistent/kimictl-child", 1, true), tostring(err))
    local ok, aerr = pcall(core.proc.spawn_detached, { argv = { "/bin/true" } })
    assert(not ok and aerr:find("timeout_ms must be a non%-negative integer"), aerr)
    ok, aerr = pcall(core.proc.spawn_detached, { argv = {}, timeout_ms = 1 })
    assert(not ok and aerr:find("argv"), aerr)
    ok, aerr = pcall(core.proc.spawn_detached, { argv = { "/bin/true" }, timeout_ms = 1, stderr = "file" })
    assert(not ok and aerr:find("invalid option 'file'"), aerr)
  end,
  ["version is semver"] = function()
    assert(core.version:match("^%d+%.%d+%.%d+"))
  end,
  ["proc.now keeps sub-millisecond precision (the benchmark times with it)"] = function()
    local fine = false
    for _ = 1, 5 do
      local t = core.proc.now()
      fine = fine or math.abs(t * 1000 - math.floor(t * 1000 + 0.5)) > 1e-6
    end
    assert(fine, "every reading was a whole millisecond")
  end,
}

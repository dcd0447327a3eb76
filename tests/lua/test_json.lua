-- core.json as Lua sees it: plain "/", always valid UTF-8, real empty arrays, exact integers.
local core = require "core"
local json = core.json

local R = "\u{FFFD}"   -- U+FFFD REPLACEMENT CHARACTER, EF BF BD

-- Encoding s gives the JSON string of want, which decodes back to valid UTF-8.
local function encodes_as(s, want)
  local got = json.encode(s)
  assert(got == '"' .. want .. '"', ("%q encoded as %q, want %q"):format(s, got, want))
  assert(utf8.len(json.decode(got)), ("%q does not decode to valid UTF-8"):format(got))
end

return {
  ["json refuses a number too large for a double, instead of reading infinity"] = function()
    for _, text in ipairs { "1e400", "[1, -1.5e3005678901234567890]", '{"max_tokens": 1e999}' } do
      local v, err = json.decode(text)
      assert(v == nil and tostring(err):find("number out of range", 1, true), ("%s: %s"):format(text, err))
    end
    assert(json.decode("1.7976931348623157e308") == 1.7976931348623157e308)   -- the largest double still reads
    assert(json.decode("-1e-400") == 0)                                       -- underflow is zero, not an error
  end,
  ["utf8 calls a lead byte 0xFE or 0xFF invalid (Lua patched: no oversized shift)"] = function()
    assert(utf8.len("\x7f\xff" .. ("\x87"):rep(80)) == nil)
    assert(utf8.len("\xfe\x80\x80\x80\x80\x80\x80") == nil)
    assert(utf8.len("\xfc\x84\x80\x80\x80\x80", 1, -1, true) == 1)         -- six bytes, lax mode: still one
  end,
  ["json leaves / plain and still decodes \\/"] = function()
    assert(json.encode("https://api.example.com/v1") == '"https://api.example.com/v1"')
    assert(json.encode({ url = "a/b" }) == '{"url":"a/b"}')
    assert(json.decode([["https:\/\/x\/y"]]) == "https://x/y")
  end,
  ["json replaces Latin-1 bytes with U+FFFD"] = function()
    encodes_as("caf\xE9", "caf" .. R)
    encodes_as("\xE9t\xE9 \xA0", R .. "t" .. R .. " " .. R)
  end,
  ["json replaces a truncated character with one U+FFFD"] = function()
    encodes_as("\xE2\x82", R)              -- euro sign missing its last byte, at the end
    encodes_as("\xE2\x82x", R .. "x")
    encodes_as("\xF0\x9F\x98", R)          -- emoji missing its last byte
    encodes_as("\xF0\x9F\x98\"", R .. '\\"')
    encodes_as("\xC3", R)
  end,
  ["json replaces overlong forms byte by byte"] = function()
    encodes_as("\xC0\xAF", R .. R)         -- "/" in two bytes
    encodes_as("\xC1\xBF", R .. R)
    encodes_as("\xE0\x80\xAF", R .. R .. R)
    encodes_as("\xF0\x80\x80\xAF", R .. R .. R .. R)
  end,
  ["json replaces UTF-8-encoded surrogates"] = function()
    encodes_as("\xED\xA0\x80", R .. R .. R)   -- U+D800
    encodes_as("\xED\xBF\xBF", R .. R .. R)   -- U+DFFF
    encodes_as("\xED\xA0\xBD\xED\xB8\x80", R:rep(6))   -- a CESU-8 pair
  end,
  ["json replaces code points above U+10FFFF"] = function()
    encodes_as("\xF4\x90\x80\x80", R:rep(4))  -- U+110000
    encodes_as("\xF5\x80\x80\x80", R:rep(4))
    encodes_as("\xF8\x88\x80\x80\x80", R:rep(5))
    encodes_as("\xFE\xFF", R .. R)
  end,
  ["json replaces stray continuation bytes"] = function()
    encodes_as("\x80", R)
    encodes_as("a\xBFb", "a" .. R .. "b")
    encodes_as("\xC3\xA9\xA9", "\xC3\xA9" .. R)
  end,
  ["json substitutes maximal subparts as Unicode's example does"] = function()
    -- The Unicode Standard, chapter 3, table 3-8
    encodes_as("a\xF1\x80\x80\xE1\x80\xC2b\x80c\x80\xBFd", "a" .. R:rep(3) .. "b" .. R .. "c" .. R .. R .. "d")
  end,
  ["json replaces invalid UTF-8 in keys too"] = function()
    assert(json.encode({ ["k\xFF"] = 1 }) == '{"k' .. R .. '":1}')
  end,
  ["json passes valid 2-, 3- and 4-byte sequences through unchanged"] = function()
    for _, cp in ipairs({ 0x80, 0xE9, 0x7FF, 0x800, 0x20AC, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF,
                          0x10000, 0x1F600, 0x10FFFF }) do
      encodes_as(utf8.char(cp), utf8.char(cp))
    end
    encodes_as("naïve 日本語 😀", "naïve 日本語 😀")
  end,
  ["json still escapes control characters, quotes and backslashes"] = function()
    assert(json.encode('a"b\\c\n\t\1\127') == [["a\"b\\c\n\t\u0001\u007f"]])
    assert(json.encode("\0") == [["\u0000"]])
  end,
  ["json encodes array_mt tables and empty_array as []"] = function()
    assert(json.encode(setmetatable({}, json.array_mt)) == "[]")
    assert(json.encode({ logins = json.array({}) }) == '{"logins":[]}')
    assert(json.encode({ tools = json.empty_array }) == '{"tools":[]}')
    assert(json.encode(json.array({ "a", 2 })) == '["a",2]')
    assert(json.encode({}) == "{}", "a plain empty table is still an object")
  end,
  ["json.array returns its table and refuses anything else"] = function()
    local t = {}
    assert(json.array(t) == t and getmetatable(t) == json.array_mt)
    assert(not pcall(json.array, "x"))
    assert(not pcall(json.array))
  end,
  ["json encodes nested empty arrays"] = function()
    local a = json.array
    assert(json.encode(a({ a({}), a({ a({}) }), json.empty_array })) == "[[],[[]],[]]")
    assert(json.encode({ messages = a({ { content = a({}) } }) }) == '{"messages":[{"content":[]}]}')
  end,
  ["json keeps decoded arrays and objects apart"] = function()
    assert(json.encode(json.decode('{"a":[]}')) == '{"a":[]}')
    assert(json.encode(json.decode('{"a":{}}')) == '{"a":{}}')
    assert(json.encode(json.decode("[[],[[]],{}]")) == "[[],[[]],{}]")
    local req = json.decode('{"tools":[],"content":[{"type":"text","parts":[]}]}')
    assert(json.encode(req.tools) == "[]")
    assert(json.encode(req.content) == '[{"type":"text","parts":[]}]' or
      json.encode(req.content) == '[{"parts":[],"type":"text"}]')
  end,
  ["json decoded arrays are plain Lua sequences"] = function()
    local t = json.decode('{"list":[1,2]}').list
    assert(getmetatable(t) == json.array_mt and #t == 2)
    table.insert(t, 3)
    assert(json.encode(t) == "[1,2,3]")
    assert(getmetatable(json.decode('{"a":1}')) == nil)
  end,
  ["json integers stay exact in arrays and objects"] = function()
    local t = json.decode('{"n":[9007199254740993,-9223372036854775808,3.0],"m":9223372036854775807}')
    assert(t.n[1] == 9007199254740993 and math.type(t.n[1]) == "integer")
    assert(t.n[2] == math.mininteger and t.m == math.maxinteger)
    assert(math.type(t.n[3]) == "float")
    assert(json.encode(t.n) == "[9007199254740993,-9223372036854775808,3]")
    assert(json.encode(json.array({ math.maxinteger })) == "[9223372036854775807]")
  end,
  ["-0 keeps its sign as a float; integers stay exact"] = function()
    local v = core.json.decode("-0")
    assert(math.type(v) == "float" and 1 / v < 0, tostring(v))
    assert(math.type(core.json.decode("[0]")[1]) == "integer")
  end,
}

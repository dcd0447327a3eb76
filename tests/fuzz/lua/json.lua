-- core.json (lua-cjson with kimictl's patches): any text decodes or says why; what decodes
-- encodes, and valid UTF-8 reads back equal (numbers keep their value, arrays stay arrays); an integer literal
-- keeps every digit.
local json = require("core").json

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    return a == b   -- 3.0 is written 3, and reads back as the integer 3: the same number
  end
  if getmetatable(a) ~= getmetatable(b) then return false end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

return function(s)
  local v, err = json.decode(s)
  if err then
    assert(v == nil and type(err) == "string")
    return
  end
  local back, berr = json.decode(json.encode(v))   -- back may be false
  assert(berr == nil, berr)
  -- encode writes valid UTF-8 (a bad byte becomes U+FFFD), so only valid text reads back equal
  assert(same(v, back) or not utf8.len(s), "decode(encode(x)) differs from x")
  local n = s:match("^%s*(%-?%d+)%s*$")
  if n and math.tointeger(tonumber(n)) and not n:match("^%-0+$") then   -- "-0" stays the float -0.0
    assert(math.type(v) == "integer" and v == math.tointeger(tonumber(n)), "integer changed: " .. n)
  end
end

-- Argument parsing shared by every command.
local cli = require "cli"

local spec = {
  name = "t", usage = "kimictl t",
  options = { { "-p", "--prompt", value = "P" }, { nil, "--json" }, { "-h", "--help" }, { nil, "--dry-run" } },
}

return {
  ["long, short and inline values"] = function()
    local o, rest = cli.parse(spec, { "t", "-p", "hi", "--json", "x", "--dry-run" }, 2)
    assert(o.prompt == "hi" and o.json == true and o.dry_run == true and rest[1] == "x")
    o = cli.parse(spec, { "t", "--prompt=a=b" }, 2)
    assert(o.prompt == "a=b")
  end,
  ["-- ends the options"] = function()
    local o, rest = cli.parse(spec, { "t", "--", "-p", "x" }, 2)
    assert(o.prompt == nil and rest[1] == "-p" and rest[2] == "x")
  end,
  ["unknown option and missing value are errors"] = function()
    local o, err = cli.parse(spec, { "t", "--nope" }, 2)
    assert(o == nil and err:find("unknown option '%-%-nope'"))
    o, err = cli.parse(spec, { "t", "-p" }, 2)
    assert(o == nil and err:find("needs a value"))
    o, err = cli.parse(spec, { "t", "--json=1" }, 2)
    assert(o == nil and err:find("takes no value"))
  end,
  ["help lists every option"] = function()
    local text = cli.help({ name = "t", summary = "S", usage = "U", options = spec.options })
    assert(text:find("%-p, %-%-prompt P") and text:find("%-%-dry%-run"))
  end,
}

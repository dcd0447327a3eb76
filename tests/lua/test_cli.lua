-- Argument parsing shared by every command.
local cli = require "cli"

local spec = {
  name = "t", usage = "kimictl t", max_args = 2,
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
  ["too many arguments and bad names are usage errors"] = function()
    local o, err = cli.parse(spec, { "t", "a", "b", "c" }, 2)
    assert(o == nil and err == "unexpected argument 'c' for 'kimictl t'", err)
    o, err = cli.parse({ name = "v", usage = "v" }, { "v", "extra" }, 2)
    assert(o == nil and err:find("unexpected argument 'extra'"), err)
    local named = { name = "n", usage = "n", options = { cli.opt.profile, cli.opt.provider("kimi") } }
    for _, bad in ipairs({ "../../x", "a/b", "", ("x"):rep(65), "a b", "é" }) do
      o, err = cli.parse(named, { "n", "--profile", bad }, 2)
      assert(o == nil and err:find("bad profile name", 1, true), bad)
      o, err = cli.parse(named, { "n", "--provider=" .. bad }, 2)
      assert(o == nil and err:find("bad provider name", 1, true), bad)
    end
    o = cli.parse(named, { "n", "-P", "work_2-b" }, 2)
    assert(o and o.profile == "work_2-b")
  end,
  ["hidden options work but are not listed"] = function()
    local hs = { name = "h", summary = "H", usage = "h", options = { { nil, "--secret-mode", hidden = true, help = "zzz" } } }
    assert(cli.parse(hs, { "h", "--secret-mode" }, 2).secret_mode == true)
    assert(not cli.help(hs):find("secret"))
  end,
  ["help lists every option"] = function()
    local text = cli.help({ name = "t", summary = "S", usage = "U", options = spec.options })
    assert(text:find("%-p, %-%-prompt P") and text:find("%-%-dry%-run"))
  end,
}

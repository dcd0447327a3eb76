-- kimictl chat: send a prompt and stream the answer to stdout as it arrives.
local cli = require "cli"
local core = require "core"
local openai = require "openai"
local provider = require "provider"

local spec = {
  summary = "Send a prompt to a model and stream the answer to stdout as it arrives.",
  usage = "kimictl chat -p PROMPT [--provider NAME] [--profile NAME] [--model ID]",
  options = {
    { "-p", "--prompt", value = "PROMPT", help = "the prompt (read from stdin when not given)" },
    { nil, "--provider", value = "NAME", help = "provider to use (default: $KIMICTL_PROVIDER or kimi)" },
    cli.opt.profile,
    { "-m", "--model", value = "ID", help = "model id (default: the provider's, e.g. $OPENAI_MODEL)" },
    { "-s", "--system", value = "TEXT", help = "a system prompt" },
  },
  details = [[Examples:
  OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-... kimictl chat -p "Hello" --provider openai --model gpt-4o-mini
  echo "Summarise this" | kimictl chat --provider openai --model gpt-4o-mini

Exit status: 0 on success, 1 when the request fails (the message says why), 2 on bad usage.]],
}

local function read_prompt(opts)
  if opts.prompt then return opts.prompt end
  if core.proc.isatty(0) then return nil end
  local text = io.stdin:read("a")
  if text and text:match("%S") then return text end
end

function spec.run(opts)
  local prompt = read_prompt(opts)
  if not prompt then return cli.usage_error(spec, "no prompt: pass -p PROMPT or pipe one on stdin") end
  local p, err = provider.load(opts.provider or os.getenv("KIMICTL_PROVIDER") or "kimi")
  if not p then return cli.fail(err, "Providers are the files in lua/providers/; yours go in " ..
    tostring(core.lua_dir) .. "/providers/.") end
  local model = opts.model or provider.default_model(p)
  if not model then return cli.fail(("no model chosen for provider '%s'"):format(p.name), "Pass --model ID.") end

  local messages = {}
  if opts.system then messages[1] = { role = "system", content = opts.system } end
  messages[#messages + 1] = { role = "user", content = prompt }

  local last = "\n"
  local function out(s)
    io.stdout:write(s)
    io.stdout:flush()
    last = s:sub(-1)
  end
  local result, msg, _, hint = openai.stream(p, { model = model, messages = messages }, { text = out },
    { profile = opts.profile })
  if last ~= "\n" then io.stdout:write("\n") end
  if not result then return cli.fail(msg, hint) end
  return cli.EXIT_OK
end

return spec

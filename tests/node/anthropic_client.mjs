// A client users already have: the official `@anthropic-ai/sdk` npm package (tests/node/setup.sh
// installs it into build/node/node_modules), talking to BASE_URL as Claude Code's SDK would.
// usage: node anthropic_client.mjs BASE_URL API_KEY MODE MODEL
//   plain   one request, not streamed            -> {"text": ..., "stop_reason": ..., "usage": {...}}
//   stream  one streamed request (finalMessage)  -> {"text": ..., "stop_reason": ..., "events": N, "usage": {...}}
//   tool    a streamed tool_use, the tool_result sent back, the final answer streamed
//                                                -> {"tool": {"id", "name", "input"}, "blocks": N,
//                                                    "stop_reason": ..., "final": ...}
//   models  the model list, every page (MODEL is ignored) -> {"models": [{"id", "display_name"}]}
// Prints one JSON line on stdout; on failure prints the error on stderr and exits 1.
// KIMICTL_NODE_MODULES names another node_modules folder.
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = process.env.KIMICTL_NODE_MODULES || join(here, "..", "..", "build", "node", "node_modules");

const TOOLS = [{
  name: "get_weather",
  description: "The weather in a city",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
}];

const textOf = (message) => message.content.filter((b) => b.type === "text").map((b) => b.text).join("");

async function streamed(client, request) {
  const stream = client.messages.stream(request);
  let events = 0;
  stream.on("streamEvent", () => events++);
  const message = await stream.finalMessage();
  return { message, events };
}

async function main() {
  const [baseURL, apiKey, mode, model] = process.argv.slice(2);
  if (!baseURL || !apiKey || !["plain", "stream", "tool", "models"].includes(mode) || !model) {
    throw new Error("usage: node anthropic_client.mjs BASE_URL API_KEY plain|stream|tool|models MODEL");
  }
  const { default: Anthropic } = await import(pathToFileURL(join(modules, "@anthropic-ai", "sdk", "index.mjs")).href);
  // No retries: a test must see the first failure, not a second attempt that hides it.
  const client = new Anthropic({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
  if (mode === "models") {
    const models = [];
    for await (const m of client.models.list()) models.push({ id: m.id, display_name: m.display_name });
    return { models };
  }
  const messages = [{ role: "user", content: mode === "tool" ? "tool" : "hi" }];

  if (mode === "plain") {
    const m = await client.messages.create({ model, max_tokens: 1024, messages });
    return { text: textOf(m), stop_reason: m.stop_reason, usage: m.usage };
  }
  if (mode === "stream") {
    const { message, events } = await streamed(client, { model, max_tokens: 1024, messages });
    return { text: textOf(message), stop_reason: message.stop_reason, events, usage: message.usage };
  }
  const first = await streamed(client, { model, max_tokens: 1024, messages, tools: TOOLS });
  const uses = first.message.content.filter((b) => b.type === "tool_use");
  if (first.message.stop_reason !== "tool_use" || uses.length !== 1) {
    throw new Error(`expected one tool_use, got ${uses.length} (stop_reason ${first.message.stop_reason})`);
  }
  const use = uses[0];
  messages.push({ role: "assistant", content: first.message.content });
  messages.push({ role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: `sunny in ${use.input.city}` }] });
  const second = await streamed(client, { model, max_tokens: 1024, messages, tools: TOOLS });
  return {
    tool: { id: use.id, name: use.name, input: use.input }, blocks: first.message.content.length,
    stop_reason: first.message.stop_reason, final: textOf(second.message),
  };
}

main().then(
  (result) => process.stdout.write(JSON.stringify(result) + "\n"),
  (err) => {
    process.stderr.write(`anthropic_client: ${err?.message ?? err}\n`);
    process.exit(1);
  },
);

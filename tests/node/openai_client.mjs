// A client users already have: the official `openai` npm package (tests/node/setup.sh installs
// it into build/node/node_modules), talking to BASE_URL as any application would.
// usage: node openai_client.mjs BASE_URL API_KEY MODE [MODEL]
//   plain   one request, not streamed            -> {"content": ...}
//   stream  one streamed request, usage asked    -> {"content": ..., "chunks": N, "usage": {...} or null}
//   tool    a streamed tool call, the tool's answer sent back, the final answer streamed
//                                                -> {"tool_name": ..., "arguments": {...}, "final": ...}
// Prints one JSON line on stdout; on failure prints the error on stderr and exits 1.
// KIMICTL_NODE_MODULES names another node_modules folder.
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = process.env.KIMICTL_NODE_MODULES || join(here, "..", "..", "build", "node", "node_modules");

const TOOLS = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];

async function streamed(client, request) {
  const stream = await client.chat.completions.create({ ...request, stream: true });
  const out = { content: "", chunks: 0, usage: null, calls: [], finish: null };
  for await (const chunk of stream) {
    out.chunks++;
    if (chunk.usage) out.usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    out.content += choice.delta?.content ?? "";
    for (const part of choice.delta?.tool_calls ?? []) {
      const call = (out.calls[part.index] ??= { id: "", name: "", arguments: "" });
      if (part.id) call.id = part.id;
      call.name += part.function?.name ?? "";
      call.arguments += part.function?.arguments ?? "";
    }
    if (choice.finish_reason) out.finish = choice.finish_reason;
  }
  return out;
}

async function main() {
  const [baseURL, apiKey, mode, model = "kimi-for-coding"] = process.argv.slice(2);
  if (!baseURL || !apiKey || !["plain", "stream", "tool"].includes(mode)) {
    throw new Error("usage: node openai_client.mjs BASE_URL API_KEY plain|stream|tool [MODEL]");
  }
  const { default: OpenAI } = await import(pathToFileURL(join(modules, "openai", "index.mjs")).href);
  // No retries: a test must see the first failure, not a second attempt that hides it.
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
  const messages = [{ role: "user", content: mode === "tool" ? "tool" : "hi" }];

  if (mode === "plain") {
    const res = await client.chat.completions.create({ model, messages });
    return { content: res.choices[0].message.content };
  }
  if (mode === "stream") {
    const s = await streamed(client, { model, messages, stream_options: { include_usage: true } });
    if (s.finish !== "stop") throw new Error(`stream ended with finish_reason ${s.finish}`);
    return { content: s.content, chunks: s.chunks, usage: s.usage };
  }
  const first = await streamed(client, { model, messages, tools: TOOLS, tool_choice: "auto" });
  if (first.finish !== "tool_calls" || first.calls.length !== 1) {
    throw new Error(`expected one tool call, got ${first.calls.length} (finish_reason ${first.finish})`);
  }
  const call = first.calls[0];
  const args = JSON.parse(call.arguments);
  messages.push({
    role: "assistant",
    tool_calls: [{ id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } }],
  });
  messages.push({ role: "tool", tool_call_id: call.id, content: `sunny in ${args.city}` });
  const second = await streamed(client, { model, messages, tools: TOOLS });
  return { tool_name: call.name, arguments: args, final: second.content };
}

main().then(
  (result) => process.stdout.write(JSON.stringify(result) + "\n"),
  (err) => {
    process.stderr.write(`openai_client: ${err?.message ?? err}\n`);
    process.exit(1);
  },
);

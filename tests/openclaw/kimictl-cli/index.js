// OpenClaw runs `kimictl chat` once per turn and reads its stream-json lines, the dialect
// OpenClaw already parses for Claude Code. The session id OpenClaw picks is kimictl's session.
import { definePluginEntry } from "openclaw/plugin-sdk/plugin-entry";

const args = ["chat", "--output-format", "stream-json"];

export default definePluginEntry({
  id: "kimictl-cli",
  name: "kimictl",
  description: "Kimi through the kimictl command",
  register(api) {
    api.registerCliBackend({
      id: "kimictl-cli",
      config: {
        command: "kimictl",
        args,
        resumeArgs: [...args, "--session", "{sessionId}"],
        sessionArgs: ["--session", "{sessionId}"],
        sessionMode: "always",
        sessionIdFields: ["session_id"],
        output: "jsonl",
        jsonlDialect: "claude-stream-json",
        input: "stdin",
        modelArg: "--model",
        systemPromptArg: "--system",
        systemPromptWhen: "first",
        serialize: true,
      },
    });
  },
});

/**
 * What the helpers behind openai's `chat.completions.stream()`, `.runTools()` and `.parse()`
 * become in a Lambda bundle (see `openaiSlim` in infra/esbuild-plugins.mjs): Engram calls
 * `chat.completions.create()` alone, streaming included, which needs none of them.
 */
function leftOut(method) {
  throw new Error(
    `openai: chat.completions.${method}() is left out of Engram's Lambda bundles (infra/esbuild-plugins.mjs)`,
  );
}

export const ChatCompletionRunner = { runTools: () => leftOut("runTools") };
export const ChatCompletionStreamingRunner = { runTools: () => leftOut("runTools") };
export const ChatCompletionStream = { createChatCompletion: () => leftOut("stream") };
export const parseChatCompletion = () => leftOut("parse");
export const validateInputTools = () => leftOut("parse");
